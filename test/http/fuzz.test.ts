import { describe, expect } from "bun:test"
import { SqlClient } from "@effect/sql"
import { Effect } from "effect"
import fc from "fast-check"
import { effectTest } from "../support/effect.ts"
import { type Api, newTenant, startApi } from "./support.ts"

const ascii = fc.string({
  unit: fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)),
  maxLength: 40,
})

const minerField = fc.oneof(
  fc.constantFrom("antminer-s21", "whatsminer-m50", "no-such-model", "", "a\u0000b"),
  fc.string({ maxLength: 200 }),
  fc.integer(),
  fc.double(),
  fc.boolean(),
  fc.constant(null),
  fc.json().map((j) => JSON.parse(j) as unknown),
)

/** Mostly well-formed AddMiner bodies with some fields replaced, dropped or added. */
const addMinerish = fc
  .record(
    {
      userId: fc.oneof(fc.constantFrom("u1", "u2"), minerField),
      modelId: fc.oneof(fc.constantFrom("antminer-s21", "avalon-a1466"), minerField),
      count: fc.oneof(fc.integer({ min: 1, max: 100 }), minerField),
      site: fc.oneof(fc.constantFrom("tx", "is"), minerField),
      powerPriceUsdPerKwh: fc.oneof(fc.double({ min: 0, max: 1, noNaN: true }), minerField),
      extra: minerField,
    },
    { requiredKeys: [] },
  )
  .map((o) => JSON.stringify(o))

const validAt = fc
  .date({ min: new Date("1990-01-01"), max: new Date("2100-01-01"), noInvalidDate: true })
  .map((d) => d.toISOString())
const validPositive = fc.double({ min: 1e-6, max: 1e6, noNaN: true })
const site = fc.constantFrom("tx", "is")
const userId = fc.constantFrom("u1", "u2")

/** A valid body per write route (optional fields sometimes left out). */
const validBodies = {
  "/api/ops/market": fc.record(
    {
      btcPriceUsd: validPositive,
      difficulty: validPositive,
      blockRewardBtc: fc.double({ min: 0.1, max: 50, noNaN: true }),
      feesBtcPerBlock: fc.double({ min: 0, max: 1, noNaN: true }),
      at: validAt,
    },
    { requiredKeys: ["btcPriceUsd", "difficulty", "blockRewardBtc", "feesBtcPerBlock"] },
  ),
  "/api/ops/incidents": fc.record(
    {
      site,
      severity: fc.constantFrom("info", "minor", "major", "critical"),
      description: fc.string({ minLength: 1, maxLength: 50 }).filter((d) => !d.includes("\u0000")),
      at: validAt,
    },
    { requiredKeys: ["site", "severity", "description"] },
  ),
  "/api/treasury/transactions": fc.record(
    {
      userId,
      kind: fc.constantFrom("deposit", "withdrawal", "mining_payout", "sale", "purchase"),
      btc: validPositive,
      usd: fc.double({ min: 0, max: 1e9, noNaN: true }),
      at: validAt,
    },
    { requiredKeys: ["userId", "kind", "btc"] },
  ),
  "/api/crm/accounts": fc.record({
    accountId: fc.constantFrom("acct-1", "acct-2"),
    userId,
    name: fc.constantFrom("Acme", "Hash & Co"),
    tier: fc.constantFrom("retail", "pro", "institutional"),
  }),
  "/api/crm/contacts": fc.record({
    contactId: fc.constantFrom("c1", "c2"),
    accountId: fc.constantFrom("acct-1", "acct-2", "no-such"),
    email: fc.constantFrom("a@b.io", "ops@miner.example"),
    name: fc.constantFrom("Ann", "Ben"),
  }),
  PATCH: fc.record(
    {
      count: fc.integer({ min: 1, max: 100 }),
      site,
      powerPriceUsdPerKwh: fc.double({ min: 0, max: 1, noNaN: true }),
    },
    { requiredKeys: [] },
  ),
}

/** A valid body with some fields replaced by anything, or one more field. */
const mangled = <T extends Record<string, unknown>>(valid: fc.Arbitrary<T>) =>
  fc
    .tuple(
      valid,
      fc.dictionary(fc.constantFrom("btc", "at", "site", "tier", "email", "count", "extra"), minerField),
    )
    .map(([v, noise]) => ({ ...v, ...noise }))

const bodyFor = (route: keyof typeof validBodies) =>
  fc
    .oneof(validBodies[route], mangled(validBodies[route] as fc.Arbitrary<Record<string, unknown>>))
    .map((o) => JSON.stringify(o))

const otherWriteish = fc.oneof(...(Object.keys(validBodies) as Array<keyof typeof validBodies>).map(bodyFor))

const body = fc.oneof(
  { weight: 5, arbitrary: addMinerish },
  { weight: 5, arbitrary: otherWriteish },
  { weight: 2, arbitrary: fc.json() },
  { weight: 1, arbitrary: fc.string({ maxLength: 300 }) },
  { weight: 1, arbitrary: fc.constant(undefined) },
)

/**
 * Miners that exist (filled in once the tenants have some), so PATCH and retire reach real rows.
 * Retirement has its own miners: a retired one takes no more changes, and PATCH must still succeed.
 */
const knownMiners = { changed: [] as Array<string>, retired: [] as Array<string> }
const minerRef = (pool: Array<string>) =>
  fc.oneof(
    fc.nat().map((i) => pool[i % Math.max(1, pool.length)] ?? "none"),
    fc.uuid(),
    ascii.map((s) => encodeURIComponent(s)),
  )

const path = fc.oneof(
  { weight: 4, arbitrary: fc.constant("/api/miners") },
  {
    weight: 4,
    arbitrary: fc.constantFrom(
      "/api/miner-models",
      "/api/ops/market",
      "/api/ops/incidents",
      "/api/treasury/transactions",
      "/api/crm/accounts",
      "/api/crm/contacts",
      "/api/forecasts?userId=u1",
      "/api/forecasts",
      "/api/portfolio/u1",
    ),
  },
  { weight: 2, arbitrary: minerRef(knownMiners.retired).map((id) => `/api/miners/${id}/retire`) },
  {
    weight: 2,
    arbitrary: fc
      .tuple(fc.constantFrom("/api/miner-models/", "/api/portfolio/", "/api/forecasts?userId="), ascii)
      .map(([prefix, v]) => `${prefix}${encodeURIComponent(v)}`),
  },
  {
    weight: 2,
    arbitrary: fc
      .tuple(fc.constantFrom("userId", "x", "userId[]"), ascii)
      .map(([k, v]) => `/api/miners?${encodeURIComponent(k)}=${encodeURIComponent(v)}`),
  },
  { weight: 2, arbitrary: minerRef(knownMiners.changed).map((id) => `/api/miners/${id}`) },
  { weight: 1, arbitrary: fc.constantFrom("/openapi.json", "/docs", "/", "/api", "/api/miners/") },
  { weight: 1, arbitrary: ascii.map((s) => `/${encodeURIComponent(s)}`) },
)

const validMinerBody = JSON.stringify({
  userId: "u1",
  modelId: "antminer-s21",
  count: 2,
  site: "tx",
  powerPriceUsdPerKwh: 0.05,
})

const validMiner = fc
  .record({
    userId: fc.constantFrom("u1", "u2"),
    modelId: fc.constantFrom("antminer-s21", "avalon-a1466", "antminer-l9"),
    count: fc.integer({ min: 1, max: 100 }),
    site: fc.string({ minLength: 1, maxLength: 20 }),
    powerPriceUsdPerKwh: fc.double({ min: 0, max: 1, noNaN: true }),
  })
  .map((o) => JSON.stringify(o))

const validWrite = fc.oneof(
  fc.record({
    method: fc.constant("POST"),
    path: fc.constant("/api/miners"),
    body: fc.oneof(validMiner, addMinerish),
  }),
  ...(
    [
      "/api/ops/market",
      "/api/ops/incidents",
      "/api/treasury/transactions",
      "/api/crm/accounts",
      "/api/crm/contacts",
    ] as const
  ).map((path) => fc.record({ method: fc.constant("POST"), path: fc.constant(path), body: bodyFor(path) })),
  fc.record({
    method: fc.constant("PATCH"),
    path: fc.nat().map((i) => `/api/miners/${knownMiners.changed[i % knownMiners.changed.length]}`),
    body: bodyFor("PATCH"),
  }),
)

/**
 * A well-formed write to a miner that exists, so the fuzz also exercises the success and idempotency
 * paths. The few shared keys soon belong to another body (a 422), so most writes carry none or a fresh
 * one: otherwise whether a route ever succeeds is down to the seed.
 */
const goodWrite = (keys: ReadonlyArray<string>) =>
  fc
    .record({
      write: validWrite,
      auth: fc.constantFrom(...keys.map((k) => `Bearer ${k}`)),
      contentType: fc.constant("application/json"),
      idempotencyKey: fc.oneof(fc.constant(undefined), fc.constantFrom("k1", "k2", "k3", "k4"), fc.uuid()),
    })
    .map(({ write, ...rest }): Request => ({ ...write, ...rest }))

const request = (keys: ReadonlyArray<string>) => fc.oneof(goodWrite(keys), anyRequest(keys))

const anyRequest = (keys: ReadonlyArray<string>) =>
  fc.record({
    method: fc.constantFrom("GET", "POST", "POST", "POST", "PUT", "PATCH", "DELETE"),
    path,
    body,
    auth: fc.oneof(fc.constantFrom(...keys.map((k) => `Bearer ${k}`)), fc.constant(undefined), ascii),
    contentType: fc.oneof(
      fc.constant("application/json"),
      fc.constant(undefined),
      fc.constantFrom(
        "text/plain",
        "application/problem+json",
        "multipart/form-data",
        "application/json; charset=utf-8",
      ),
      ascii,
    ),
    idempotencyKey: fc.oneof(fc.constant(undefined), fc.constantFrom("k1", "k2", "k3"), ascii),
  })

const send = (api: Api, r: Request) => {
  const headers: Record<string, string> = {}
  if (r.auth !== undefined) headers.authorization = r.auth
  if (r.contentType !== undefined) headers["content-type"] = r.contentType
  if (r.idempotencyKey !== undefined) headers["idempotency-key"] = r.idempotencyKey
  const hasBody = r.body !== undefined && r.method !== "GET"
  return api.call(r.path, { method: r.method, headers, ...(hasBody ? { body: r.body } : {}) })
}

type Request = {
  method: string
  path: string
  body: string | undefined
  auth: string | undefined
  contentType: string | undefined
  idempotencyKey: string | undefined
}

describe("fuzz", () => {
  effectTest(
    "random requests to every endpoint never get a 5xx, and every domain row has its event and every event its row",
    () =>
      Effect.gen(function* () {
        const api = yield* startApi()
        const sql = yield* SqlClient.SqlClient
        const [a, b] = [yield* newTenant, yield* newTenant]
        for (const t of [a, b, a, b]) {
          const miner = yield* api.call("/api/miners", { method: "POST", key: t.key, body: validMinerBody })
          const pool = knownMiners.changed.length < 2 ? knownMiners.changed : knownMiners.retired
          pool.push((miner.json as { id: string }).id)
        }
        const seen = new Map<number, number>()
        const succeeded = new Set<string>()
        yield* Effect.promise(() =>
          fc.assert(
            fc.asyncProperty(request([a.key, b.key]), async (r) => {
              const reply = await Effect.runPromise(send(api, r))
              seen.set(reply.status, (seen.get(reply.status) ?? 0) + 1)
              if (reply.status < 300)
                succeeded.add(`${r.method} ${r.path.replace(/\/api\/miners\/[^/?]+/, "/api/miners/{id}")}`)
              if (reply.status >= 500)
                throw new Error(`${reply.status} for ${JSON.stringify(r)}: ${reply.text}`)
              if (reply.status >= 400 && !r.path.startsWith("/docs")) {
                expect(reply.headers.get("content-type")).toBe("application/problem+json")
              }
            }),
            { numRuns: 600 },
          ),
        )
        expect(seen.get(201) ?? 0).toBeGreaterThan(20)
        // Every write route executed for real at least once, not only its rejections.
        expect([...succeeded].sort()).toEqual(
          expect.arrayContaining([
            "PATCH /api/miners/{id}",
            "POST /api/crm/accounts",
            "POST /api/miners",
            "POST /api/ops/incidents",
            "POST /api/ops/market",
            "POST /api/treasury/transactions",
          ]),
        )
        expect(seen.get(422) ?? 0).toBeGreaterThan(0)
        const inconsistent = yield* sql<{ id: string; events: number }>`
          SELECT m.id::text AS id, count(e.id)::int AS events
          FROM miners m LEFT JOIN event_outbox e ON e.aggregateid = m.id::text AND e.type = 'MinerAdded'
          WHERE m.tenant_id IN (${a.id}, ${b.id})
          GROUP BY m.id HAVING count(e.id) <> 1`
        expect(inconsistent).toEqual([])
        const orphans = yield* sql`
          SELECT e.id FROM event_outbox e LEFT JOIN miners m ON m.id::text = e.aggregateid
          WHERE e.tenant_id IN (${a.id}, ${b.id}) AND e.type = 'MinerAdded' AND m.id IS NULL`
        expect(orphans).toEqual([])
        // Every domain row has its event and every event its row (upserts: at least one each).
        const unmatched = yield* sql<{ what: string; id: string }>`
          WITH ev AS (SELECT type, payload FROM event_outbox WHERE tenant_id IN (${a.id}, ${b.id}))
          SELECT 'market' AS what, tenant_id::text AS id FROM market_data
            WHERE tenant_id IN (${a.id}, ${b.id}) GROUP BY tenant_id
            HAVING count(*) <> (SELECT count(*) FROM event_outbox e
              WHERE e.tenant_id = market_data.tenant_id AND e.type = 'MarketDataUpdated')
          UNION ALL
          SELECT 'incident', s.id::text FROM site_incidents s WHERE s.tenant_id IN (${a.id}, ${b.id})
            AND (SELECT count(*) FROM ev WHERE type = 'SiteIncidentReported' AND payload->>'incidentId' = s.id::text) <> 1
          UNION ALL
          SELECT 'treasury', x.id::text FROM treasury_transactions x WHERE x.tenant_id IN (${a.id}, ${b.id})
            AND (SELECT count(*) FROM ev WHERE type = 'TreasuryTransactionRecorded'
                 AND payload->>'transactionId' = x.id::text) <> 1
          UNION ALL
          SELECT 'account', c.id FROM crm_accounts c WHERE c.tenant_id IN (${a.id}, ${b.id})
            AND NOT EXISTS (SELECT 1 FROM ev WHERE type = 'AccountUpserted' AND payload->>'accountId' = c.id)
          UNION ALL
          SELECT 'contact', c.id FROM crm_contacts c WHERE c.tenant_id IN (${a.id}, ${b.id})
            AND NOT EXISTS (SELECT 1 FROM ev WHERE type = 'ContactUpserted' AND payload->>'contactId' = c.id)
          UNION ALL
          SELECT 'retired', m.id::text FROM miners m WHERE m.tenant_id IN (${a.id}, ${b.id})
            AND (SELECT count(*) FROM ev WHERE type = 'MinerRetired' AND payload->>'minerId' = m.id::text)
              <> (CASE WHEN m.status = 'retired' THEN 1 ELSE 0 END)
          UNION ALL
          SELECT 'orphan ' || e.type, e.id::text FROM event_outbox e
            WHERE e.tenant_id IN (${a.id}, ${b.id}) AND NOT EXISTS (
              SELECT 1 FROM treasury_transactions x WHERE x.id::text = e.payload->>'transactionId'
              UNION ALL SELECT 1 FROM site_incidents s WHERE s.id::text = e.payload->>'incidentId'
              UNION ALL SELECT 1 FROM crm_accounts c WHERE c.tenant_id = e.tenant_id AND c.id = e.payload->>'accountId'
              UNION ALL SELECT 1 FROM miners m WHERE m.id::text = e.payload->>'minerId')
            AND e.type <> 'MarketDataUpdated'`
        expect(unmatched).toEqual([])
        const stuck = yield* sql`SELECT idempotency_key FROM idempotency_records
          WHERE tenant_id IN (${a.id}, ${b.id}) AND state = 'in_flight'`
        expect(stuck).toEqual([])
      }),
    { timeout: 120_000 },
  )
})
