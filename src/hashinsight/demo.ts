/**
 * `loadDemo`: a small, realistic tenant through the real HTTP API — market data, three users with
 * miners from the catalogue, treasury movements, and a CRM account + contact each. Every write
 * carries an Idempotency-Key derived from a stable name and a body that never changes, so running
 * it again (within the 24 h key window) replays stored responses and writes nothing.
 */
import { Duration, Effect, Schedule, Schema } from "effect"

export class DemoLoadFailed extends Schema.TaggedError<DemoLoadFailed>()("DemoLoadFailed", {
  step: Schema.String,
  /** The HTTP status, when the API answered at all. */
  status: Schema.optional(Schema.Number),
  detail: Schema.String,
}) {
  override get message() {
    return `demo ${this.step}: ${this.status === undefined ? "" : `HTTP ${this.status}: `}${this.detail}`
  }
}

interface Write {
  readonly name: string
  readonly method: "POST"
  readonly path: string
  readonly body: Record<string, unknown>
}

/** Bitcoin around early 2025: price, difficulty, the post-2024-halving subsidy, typical fees. */
const market = { btcPriceUsd: 95_000, difficulty: 1.1e14, blockRewardBtc: 3.125, feesBtcPerBlock: 0.05 }

const users = [
  {
    userId: "alice",
    tier: "pro",
    miners: [
      { modelId: "antminer-s21", count: 40, site: "texas-1", powerPriceUsdPerKwh: 0.045 },
      { modelId: "whatsminer-m60s", count: 25, site: "texas-1", powerPriceUsdPerKwh: 0.045 },
      { modelId: "antminer-s19j-pro", count: 60, site: "quebec-2", powerPriceUsdPerKwh: 0.038 },
    ],
    treasury: [
      { kind: "deposit", btc: 2.5, usd: 237_500 },
      { kind: "mining_payout", btc: 0.42 },
    ],
  },
  {
    userId: "bob",
    tier: "retail",
    miners: [
      { modelId: "antminer-s21-pro", count: 4, site: "home-lab", powerPriceUsdPerKwh: 0.12 },
      { modelId: "avalon-a1466", count: 2, site: "home-lab", powerPriceUsdPerKwh: 0.12 },
    ],
    treasury: [
      { kind: "purchase", btc: 0.15, usd: 14_250 },
      { kind: "mining_payout", btc: 0.012 },
    ],
  },
  {
    userId: "carol",
    tier: "institutional",
    miners: [
      { modelId: "antminer-s21-xp-hyd", count: 500, site: "norway-1", powerPriceUsdPerKwh: 0.03 },
      { modelId: "whatsminer-m66s", count: 300, site: "norway-1", powerPriceUsdPerKwh: 0.03 },
      { modelId: "antminer-l9", count: 50, site: "kazakhstan-3", powerPriceUsdPerKwh: 0.04 },
    ],
    treasury: [
      { kind: "deposit", btc: 150, usd: 14_250_000 },
      { kind: "sale", btc: 12.5, usd: 1_187_500 },
    ],
  },
] as const

const writes: ReadonlyArray<Write> = [
  { name: "market", method: "POST", path: "/api/ops/market", body: market },
  ...users.flatMap((u) => [
    ...u.miners.map((m, i) => ({
      name: `miner:${u.userId}:${i}`,
      method: "POST" as const,
      path: "/api/miners",
      body: { userId: u.userId, ...m },
    })),
    ...u.treasury.map((t, i) => ({
      name: `treasury:${u.userId}:${i}`,
      method: "POST" as const,
      path: "/api/treasury/transactions",
      body: { userId: u.userId, ...t },
    })),
    {
      name: `account:${u.userId}`,
      method: "POST" as const,
      path: "/api/crm/accounts",
      body: { accountId: `acct-${u.userId}`, userId: u.userId, name: `${u.userId} mining`, tier: u.tier },
    },
    {
      name: `contact:${u.userId}`,
      method: "POST" as const,
      path: "/api/crm/contacts",
      body: {
        contactId: `contact-${u.userId}`,
        accountId: `acct-${u.userId}`,
        email: `${u.userId}@example.com`,
        name: u.userId.charAt(0).toUpperCase() + u.userId.slice(1),
      },
    },
  ]),
]

/** Sends one write; true when the API replayed an earlier response. A 5xx or refused connection is retried. */
const send = (baseUrl: string, apiKey: string, write: Write) =>
  Effect.tryPromise({
    try: () =>
      fetch(`${baseUrl}${write.path}`, {
        method: write.method,
        headers: {
          authorization: `Bearer ${apiKey}`,
          "content-type": "application/json",
          "idempotency-key": `demo:v1:${write.name}`,
        },
        body: JSON.stringify(write.body),
      }),
    catch: (e) => new DemoLoadFailed({ step: write.name, detail: `request failed: ${String(e)}` }),
  }).pipe(
    Effect.flatMap((res) =>
      res.ok
        ? Effect.succeed(res.headers.get("idempotent-replayed") === "true")
        : Effect.flatMap(
            Effect.promise(() => res.text()),
            (text) => Effect.fail(new DemoLoadFailed({ step: write.name, status: res.status, detail: text })),
          ),
    ),
    Effect.retry({
      schedule: Schedule.exponential(Duration.millis(100)).pipe(Schedule.intersect(Schedule.recurs(4))),
      while: (e) => e.status === undefined || e.status >= 500,
    }),
  )

export const loadDemo = Effect.fn("Demo.load")(function* (baseUrl: string, apiKey: string) {
  // In order: contacts need their account, and market data first makes every later figure priced.
  const replayed = yield* Effect.forEach(writes, (w) => send(baseUrl, apiKey, w))
  const count = (path: string) => writes.filter((w) => w.path === path).length
  const again = replayed.filter(Boolean).length
  yield* Effect.logInfo(
    `demo loaded: 1 market observation, ${users.length} users (${users.map((u) => u.userId).join(", ")}), ` +
      `${count("/api/miners")} miner holdings, ${count("/api/treasury/transactions")} treasury transactions, ` +
      `${count("/api/crm/accounts")} CRM accounts + ${count("/api/crm/contacts")} contacts` +
      (again === writes.length ? " (already loaded: nothing new written)" : ` (${again} replayed)`),
  )
})
