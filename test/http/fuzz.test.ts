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

const body = fc.oneof(
  { weight: 5, arbitrary: addMinerish },
  { weight: 2, arbitrary: fc.json() },
  { weight: 1, arbitrary: fc.string({ maxLength: 300 }) },
  { weight: 1, arbitrary: fc.constant(undefined) },
)

const path = fc.oneof(
  { weight: 4, arbitrary: fc.constant("/api/miners") },
  {
    weight: 2,
    arbitrary: fc
      .tuple(fc.constantFrom("userId", "x", "userId[]"), ascii)
      .map(([k, v]) => `/api/miners?${encodeURIComponent(k)}=${encodeURIComponent(v)}`),
  },
  { weight: 2, arbitrary: fc.oneof(fc.uuid(), ascii).map((id) => `/api/miners/${encodeURIComponent(id)}`) },
  { weight: 1, arbitrary: fc.constantFrom("/openapi.json", "/docs", "/", "/api", "/api/miners/") },
  { weight: 1, arbitrary: ascii.map((s) => `/${encodeURIComponent(s)}`) },
)

const validMiner = fc
  .record({
    userId: fc.constantFrom("u1", "u2"),
    modelId: fc.constantFrom("antminer-s21", "avalon-a1466", "antminer-l9"),
    count: fc.integer({ min: 1, max: 100 }),
    site: fc.string({ minLength: 1, maxLength: 20 }),
    powerPriceUsdPerKwh: fc.double({ min: 0, max: 1, noNaN: true }),
  })
  .map((o) => JSON.stringify(o))

/** A well-formed write, so the fuzz also exercises the success and idempotency paths. */
const goodWrite = (keys: ReadonlyArray<string>) =>
  fc.record({
    method: fc.constant("POST"),
    path: fc.constant("/api/miners"),
    body: fc.oneof(validMiner, addMinerish),
    auth: fc.constantFrom(...keys.map((k) => `Bearer ${k}`)),
    contentType: fc.constant("application/json"),
    idempotencyKey: fc.oneof(fc.constant(undefined), fc.constantFrom("k1", "k2", "k3", "k4")),
  })

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
    "random requests to every endpoint never get a 5xx and leave every miner with exactly one MinerAdded",
    () =>
      Effect.gen(function* () {
        const api = yield* startApi()
        const sql = yield* SqlClient.SqlClient
        const [a, b] = [yield* newTenant, yield* newTenant]
        const seen = new Map<number, number>()
        yield* Effect.promise(() =>
          fc.assert(
            fc.asyncProperty(request([a.key, b.key]), async (r) => {
              const reply = await Effect.runPromise(send(api, r))
              seen.set(reply.status, (seen.get(reply.status) ?? 0) + 1)
              if (reply.status >= 500)
                throw new Error(`${reply.status} for ${JSON.stringify(r)}: ${reply.text}`)
              if (reply.status >= 400 && !r.path.startsWith("/docs")) {
                expect(reply.headers.get("content-type")).toBe("application/problem+json")
              }
            }),
            { numRuns: 400 },
          ),
        )
        expect(seen.get(201) ?? 0).toBeGreaterThan(20)
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
        const stuck = yield* sql`SELECT idempotency_key FROM idempotency_records
          WHERE tenant_id IN (${a.id}, ${b.id}) AND state = 'in_flight'`
        expect(stuck).toEqual([])
      }),
    { timeout: 120_000 },
  )
})
