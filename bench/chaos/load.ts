/**
 * The chaos run's clients: keyed HTTP writes at a steady rate, as a careful client makes them. Each
 * user has one write in flight at a time (so a user's writes have an order to keep), and a write is
 * retried with its own `Idempotency-Key` until it is accepted: after a 503 (as its `Retry-After`
 * says), a 409 (the first attempt still in flight), or a connection that failed (the API killed).
 * Some accepted writes are sent once more with the same key on purpose; they must come back replayed.
 *
 * Each write carries a marker the audit finds it by in the database: a treasury transaction's `at`
 * (unique, increasing in the order the writes were made), a holding's `site`, an account's id.
 */
import type { Rng } from "./prng.ts"

export type WriteKind = "treasury" | "miner" | "crm"

export interface Write {
  readonly key: string
  readonly kind: WriteKind
  readonly user: string
  readonly path: string
  readonly body: Record<string, unknown>
  readonly marker: string
  /** A treasury write's signed BTC amount (0 for others). */
  readonly btcDelta: number
}

export interface WriteOutcome {
  readonly write: Write
  readonly accepted: boolean
  /** A 4xx other than 409: the write is refused for good (none expected). */
  readonly refused: number | undefined
  readonly attempts: number
}

export interface ServerError {
  readonly status: number
  readonly retryAfter: boolean
  readonly detail: string
}

export interface LoadReport {
  readonly outcomes: ReadonlyArray<WriteOutcome>
  readonly serverErrors: ReadonlyArray<ServerError>
  /** Accepted writes sent again with the same key, and how many of those came back replayed. */
  readonly resent: number
  readonly resentReplayed: number
  /** Writes not started because every user had one in flight (the platform fell behind). */
  readonly shed: number
}

export interface LoadOptions {
  readonly url: string
  readonly apiKey: string
  /** Writes per second. */
  readonly rate: number
  readonly users: number
  readonly prefix: string
  readonly rng: Rng
  /** Share of accepted writes sent again with the same key. */
  readonly resend?: number
}

/** Where treasury markers start: one ms apart per write, far from any real date. */
const markerEpoch = Date.UTC(2100, 0, 1)

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms))

export const startLoad = (options: LoadOptions) => {
  const { rng } = options
  const outcomes: Array<WriteOutcome> = []
  const serverErrors: Array<ServerError> = []
  const busy = new Set<number>()
  const pending = new Set<Promise<void>>()
  let resent = 0
  let resentReplayed = 0
  let shed = 0
  let seq = 0
  let cursor = 0
  let running = true

  const makeWrite = (user: number): Write => {
    const n = seq++
    const key = `${options.prefix}-${n}`
    const userId = `${options.prefix}-u${user}`
    const roll = rng.next()
    if (roll < 0.75) {
      const kind = rng.chance(0.2) ? "withdrawal" : "deposit"
      const btc = rng.between(1, 100_000) / 100_000
      const at = new Date(markerEpoch + n).toISOString()
      return {
        key,
        kind: "treasury",
        user: userId,
        path: "/api/treasury/transactions",
        body: { userId, kind, btc, at },
        marker: at,
        btcDelta: kind === "withdrawal" ? -btc : btc,
      }
    }
    if (roll < 0.9)
      return {
        key,
        kind: "miner",
        user: userId,
        path: "/api/miners",
        body: { userId, modelId: "antminer-s21", count: 1, site: key, powerPriceUsdPerKwh: 0.05 },
        marker: key,
        btcDelta: 0,
      }
    return {
      key,
      kind: "crm",
      user: userId,
      path: "/api/crm/accounts",
      body: { accountId: `acct-${key}`, userId, name: `Account ${key}`, tier: "retail" },
      marker: `acct-${key}`,
      btcDelta: 0,
    }
  }

  const send = async (write: Write) => {
    const response = await fetch(`${options.url}${write.path}`, {
      method: "POST",
      headers: {
        Authorization: `Bearer ${options.apiKey}`,
        "Content-Type": "application/json",
        "Idempotency-Key": write.key,
      },
      body: JSON.stringify(write.body),
      signal: AbortSignal.timeout(20_000),
    })
    const text = await response.text()
    return { status: response.status, headers: response.headers, text }
  }

  const perform = async (write: Write) => {
    let attempts = 0
    const deadline = Date.now() + 120_000
    while (Date.now() < deadline) {
      attempts++
      const answer = await send(write).catch(() => undefined)
      if (answer === undefined) {
        await pause(250)
        continue
      }
      if (answer.status < 300) {
        outcomes.push({ write, accepted: true, refused: undefined, attempts })
        return
      }
      if (answer.status >= 500) {
        serverErrors.push({
          status: answer.status,
          retryAfter: answer.headers.get("retry-after") !== null,
          detail: answer.text.slice(0, 300),
        })
        await pause(250 + rng.between(0, 250))
        continue
      }
      if (answer.status === 409) {
        await pause(200)
        continue
      }
      outcomes.push({ write, accepted: false, refused: answer.status, attempts })
      return
    }
    outcomes.push({ write, accepted: false, refused: undefined, attempts })
  }

  /** The same request with the same key once more: it must be answered from the stored response. */
  const resend = async (write: Write) => {
    for (let i = 0; i < 50; i++) {
      const answer = await send(write).catch(() => undefined)
      if (answer && answer.status < 300) {
        resent++
        if (answer.headers.get("idempotent-replayed") === "true") resentReplayed++
        return
      }
      if (answer && answer.status >= 500)
        serverErrors.push({
          status: answer.status,
          retryAfter: answer.headers.get("retry-after") !== null,
          detail: answer.text.slice(0, 300),
        })
      await pause(250)
    }
  }

  const begin = (user: number) => {
    busy.add(user)
    const write = makeWrite(user)
    const p: Promise<void> = perform(write)
      .then(async () => {
        if (rng.chance(options.resend ?? 0.05)) await resend(write)
      })
      .finally(() => {
        busy.delete(user)
        pending.delete(p)
      })
    pending.add(p)
  }

  const start = performance.now()
  let started = 0
  const timer = setInterval(() => {
    if (!running) return
    const due = Math.floor(((performance.now() - start) / 1000) * options.rate)
    for (; started < due; started++) {
      let user: number | undefined
      for (let i = 0; i < options.users && user === undefined; i++) {
        const u = (cursor + i) % options.users
        if (!busy.has(u)) user = u
      }
      if (user === undefined) {
        shed++
        continue
      }
      cursor = (user + 1) % options.users
      begin(user)
    }
  }, 10)

  return {
    accepted: () => outcomes.filter((o) => o.accepted).length,
    /** Stops starting writes and waits for those in flight to be accepted (or given up). */
    stop: async (): Promise<LoadReport> => {
      running = false
      clearInterval(timer)
      while (pending.size > 0) await Promise.all([...pending])
      return { outcomes, serverErrors, resent, resentReplayed, shed }
    },
  }
}
