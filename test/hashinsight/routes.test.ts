import { describe, expect } from "bun:test"
import { SqlClient } from "@effect/sql"
import { Effect } from "effect"
import { addMinerBody, newTenant, outboxOf, scratchTenant, startApi } from "../http/support.ts"
import { effectTest } from "../support/effect.ts"

const problemType = (slug: string) => `https://hashinsight.dev/problems/${slug}`
const post = (body: unknown, headers: Record<string, string> = {}) => ({
  method: "POST",
  body: JSON.stringify(body),
  headers,
})

const count = (table: string, tenantId: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql<{ n: number }>`SELECT count(*)::int AS n FROM ${sql(table)} WHERE tenant_id = ${tenantId}`.pipe(
      Effect.map((r) => r[0]!.n),
    ),
  )

const market = { btcPriceUsd: 95_000, difficulty: 1.1e14, blockRewardBtc: 3.125, feesBtcPerBlock: 0.05 }

describe("write routes: row + exactly one event of the right type, in one transaction", () => {
  effectTest(
    "PATCH /api/miners/{id} changes the holding and appends MinerChanged; retire appends MinerRetired",
    () =>
      Effect.gen(function* () {
        const api = yield* startApi()
        const t = yield* newTenant
        const added = (yield* api.call("/api/miners", { method: "POST", key: t.key, body: addMinerBody() }))
          .json as {
          id: string
        }
        const changed = yield* api.call(`/api/miners/${added.id}`, {
          method: "PATCH",
          key: t.key,
          body: JSON.stringify({ count: 7, powerPriceUsdPerKwh: 0.05 }),
        })
        expect(changed.status).toBe(200)
        expect(changed.json).toMatchObject({
          id: added.id,
          count: 7,
          site: "texas-1",
          powerPriceUsdPerKwh: 0.05,
        })
        const retired = yield* api.call(`/api/miners/${added.id}/retire`, { method: "POST", key: t.key })
        expect(retired.status).toBe(200)
        expect(retired.json).toMatchObject({ id: added.id, status: "retired", count: 7 })

        const events = yield* outboxOf(t.id)
        expect(events.map((e) => [e.type, e.aggregateid])).toEqual([
          ["MinerAdded", added.id],
          ["MinerChanged", added.id],
          ["MinerRetired", added.id],
        ])
        expect(events[1]!.payload).toEqual({
          minerId: added.id,
          userId: "user-1",
          modelId: "antminer-s21",
          count: 7,
          site: "texas-1",
          powerPriceUsdPerKwh: 0.05,
        })
        expect(events[2]!.payload).toEqual({ minerId: added.id, userId: "user-1" })

        // A retired holding takes no more changes, and nothing is appended for the refusals.
        const again = yield* api.call(`/api/miners/${added.id}`, {
          method: "PATCH",
          key: t.key,
          body: JSON.stringify({ count: 9 }),
        })
        const retireAgain = yield* api.call(`/api/miners/${added.id}/retire`, { method: "POST", key: t.key })
        for (const reply of [again, retireAgain]) {
          expect(reply.status).toBe(409)
          expect((reply.json as { type: string }).type).toBe(problemType("conflict"))
        }
        expect(yield* outboxOf(t.id)).toHaveLength(3)
      }),
  )

  effectTest(
    "PATCH and retire of another tenant's miner are 404 exactly like a missing one, and change nothing",
    () =>
      Effect.gen(function* () {
        const api = yield* startApi()
        const [a, b] = [yield* newTenant, yield* newTenant]
        const bMiner = (yield* api.call("/api/miners", { method: "POST", key: b.key, body: addMinerBody() }))
          .json as {
          id: string
        }
        const missing = "0190a000-0000-7000-8000-000000000000"
        const patch = (id: string) =>
          api.call(`/api/miners/${id}`, { method: "PATCH", key: a.key, body: JSON.stringify({ count: 99 }) })
        const retire = (id: string) => api.call(`/api/miners/${id}/retire`, { method: "POST", key: a.key })
        for (const [foreign, absent] of [
          [yield* patch(bMiner.id), yield* patch(missing)],
          [yield* retire(bMiner.id), yield* retire(missing)],
        ]) {
          expect(foreign!.status).toBe(404)
          expect(absent!.status).toBe(404)
          const strip = (r: typeof foreign) => ({ ...(r!.json as object), detail: undefined })
          expect(strip(foreign)).toEqual(strip(absent))
        }
        const stillB = (yield* api.call(`/api/miners/${bMiner.id}`, { key: b.key })).json
        expect(stillB).toMatchObject({ count: 3, status: "active" })
        expect((yield* outboxOf(b.id)).map((e) => e.type)).toEqual(["MinerAdded"])
        expect(yield* outboxOf(a.id)).toEqual([])
      }),
  )

  effectTest(
    "POST /api/ops/market and /api/ops/incidents write the row and its ops event; GET returns the latest",
    () =>
      Effect.gen(function* () {
        const api = yield* startApi()
        const t = yield* newTenant
        expect((yield* api.call("/api/ops/market", { key: t.key })).status).toBe(404)
        const older = yield* api.call("/api/ops/market", {
          key: t.key,
          ...post({ ...market, btcPriceUsd: 90_000, at: "2025-01-01T00:00:00Z" }),
        })
        const newer = yield* api.call("/api/ops/market", {
          key: t.key,
          ...post({ ...market, at: "2025-01-02T00:00:00Z" }),
        })
        expect([older.status, newer.status]).toEqual([201, 201])
        const recorded = newer.json as { eventId: string; at: string }
        expect(recorded).toMatchObject({ ...market, at: "2025-01-02T00:00:00.000Z" })
        const latest = yield* api.call("/api/ops/market", { key: t.key })
        expect(latest.status).toBe(200)
        expect(latest.json).toEqual({ ...market, at: "2025-01-02T00:00:00.000Z" })

        const incident = yield* api.call("/api/ops/incidents", {
          key: t.key,
          ...post({ site: "texas-1", severity: "major", description: "cooling loop failure" }),
        })
        expect(incident.status).toBe(201)
        const inc = incident.json as { incidentId: string; eventId: string }

        const events = yield* outboxOf(t.id)
        expect(events.map((e) => [e.aggregatetype, e.type])).toEqual([
          ["ops", "MarketDataUpdated"],
          ["ops", "MarketDataUpdated"],
          ["ops", "SiteIncidentReported"],
        ])
        expect(events[1]).toMatchObject({ id: recorded.eventId, payload: { ...market, at: recorded.at } })
        expect(events[2]).toMatchObject({
          id: inc.eventId,
          aggregateid: "texas-1",
          payload: { incidentId: inc.incidentId, severity: "major" },
        })
        expect(yield* count("market_data", t.id)).toBe(2)
      }),
  )

  effectTest("POST /api/treasury/transactions writes the transaction and TreasuryTransactionRecorded", () =>
    Effect.gen(function* () {
      const api = yield* startApi()
      const t = yield* newTenant
      const reply = yield* api.call("/api/treasury/transactions", {
        key: t.key,
        ...post({ userId: "alice", kind: "sale", btc: 0.5, usd: 47_500, at: "2025-02-01T12:00:00Z" }),
      })
      expect(reply.status).toBe(201)
      const tx = reply.json as { transactionId: string; eventId: string }
      expect(tx).toMatchObject({
        userId: "alice",
        kind: "sale",
        btc: 0.5,
        usd: 47_500,
        at: "2025-02-01T12:00:00.000Z",
      })
      const events = yield* outboxOf(t.id)
      expect(events).toHaveLength(1)
      expect(events[0]).toMatchObject({
        id: tx.eventId,
        aggregatetype: "treasury",
        type: "TreasuryTransactionRecorded",
        aggregateid: "alice",
        payload: { transactionId: tx.transactionId, btc: 0.5, kind: "sale" },
      })
    }),
  )

  effectTest("POST /api/crm/accounts and /contacts upsert with their events; an unknown account is 422", () =>
    Effect.gen(function* () {
      const api = yield* startApi()
      const t = yield* newTenant
      const account = { accountId: "acct-1", userId: "alice", name: "Alice Mining", tier: "pro" }
      const created = yield* api.call("/api/crm/accounts", { key: t.key, ...post(account) })
      expect(created.status).toBe(200)
      const contact = { contactId: "c-1", accountId: "acct-1", email: "alice@example.com", name: "Alice" }
      const added = yield* api.call("/api/crm/contacts", { key: t.key, ...post(contact) })
      expect(added.status).toBe(200)
      expect(added.json).toMatchObject(contact)

      const orphan = yield* api.call("/api/crm/contacts", {
        key: t.key,
        ...post({ ...contact, contactId: "c-2", accountId: "no-such-account" }),
      })
      expect(orphan.status).toBe(422)
      expect(orphan.headers.get("content-type")).toBe("application/problem+json")
      expect((orphan.json as { type: string }).type).toBe(problemType("unknown-account"))

      // Another tenant's account is as unknown as a missing one.
      const other = yield* newTenant
      const foreign = yield* api.call("/api/crm/contacts", { key: other.key, ...post(contact) })
      expect(foreign.status).toBe(422)

      const events = yield* outboxOf(t.id)
      expect(events.map((e) => [e.aggregatetype, e.type, e.aggregateid])).toEqual([
        ["crm", "AccountUpserted", "acct-1"],
        ["crm", "ContactUpserted", "acct-1"],
      ])
      expect(events[0]!.id).toBe((created.json as { eventId: string }).eventId)
      expect(yield* count("crm_contacts", t.id)).toBe(1)
      expect(yield* outboxOf(other.id)).toEqual([])
    }),
  )

  effectTest("bad input to every new write is a 4xx problem and writes nothing", () =>
    Effect.gen(function* () {
      const api = yield* startApi()
      const t = yield* newTenant
      const minerId = (
        (yield* api.call("/api/miners", { method: "POST", key: t.key, body: addMinerBody() })).json as {
          id: string
        }
      ).id
      const cases: ReadonlyArray<readonly [string, RequestInit, number]> = [
        [`/api/miners/${minerId}`, { method: "PATCH", body: "{}" }, 400],
        [`/api/miners/${minerId}`, { method: "PATCH", body: JSON.stringify({ count: 0 }) }, 400],
        [`/api/miners/${minerId}`, { method: "PATCH", body: JSON.stringify({ site: "a\u0000b" }) }, 400],
        ["/api/miners/not-a-uuid", { method: "PATCH", body: JSON.stringify({ count: 2 }) }, 400],
        ["/api/miners/not-a-uuid/retire", { method: "POST" }, 400],
        ["/api/ops/market", post({ ...market, btcPriceUsd: -1 }), 400],
        ["/api/ops/market", post({ ...market, difficulty: "big" }), 400],
        ["/api/ops/market", post({ ...market, at: "+275760-09-13T00:00:00Z" }), 400],
        ["/api/ops/market", post({ ...market, at: "yesterday" }), 400],
        ["/api/ops/incidents", post({ site: "x", severity: "apocalyptic", description: "d" }), 400],
        ["/api/ops/incidents", post({ site: "x", severity: "info", description: "a\u0000b" }), 400],
        ["/api/treasury/transactions", post({ userId: "u", kind: "deposit", btc: 0 }), 400],
        ["/api/treasury/transactions", post({ userId: "u\u0000", kind: "deposit", btc: 1 }), 400],
        ["/api/treasury/transactions", post({ userId: "u", kind: "gift", btc: 1 }), 400],
        ["/api/crm/accounts", post({ accountId: "a", userId: "u", name: "n", tier: "vip" }), 400],
        [
          "/api/crm/contacts",
          post({ contactId: "c", accountId: "a", email: "not-an-email", name: "n" }),
          400,
        ],
        ["/api/crm/contacts", post({ contactId: "c", accountId: "a", email: "a@b", name: "n" }), 422],
        ["/api/ops/market", { method: "POST", body: '{"btcPriceUsd":' }, 400],
      ]
      for (const [path, init, status] of cases) {
        const reply = yield* api.call(path, { ...init, key: t.key })
        expect({ path, body: init.body, status: reply.status }).toEqual({ path, body: init.body, status })
        expect(reply.headers.get("content-type")).toBe("application/problem+json")
      }
      expect((yield* outboxOf(t.id)).map((e) => e.type)).toEqual(["MinerAdded"])
      for (const table of [
        "market_data",
        "site_incidents",
        "treasury_transactions",
        "crm_accounts",
        "crm_contacts",
      ])
        expect(yield* count(table, t.id)).toBe(0)
    }),
  )

  effectTest(
    "Idempotency-Key on POST /api/ops/market: a replay writes nothing; a different body is 422",
    () =>
      Effect.gen(function* () {
        const api = yield* startApi()
        const t = yield* newTenant
        const key = { "idempotency-key": "market-2025-01-02" }
        const first = yield* api.call("/api/ops/market", { key: t.key, ...post(market, key) })
        const replay = yield* api.call("/api/ops/market", { key: t.key, ...post(market, key) })
        expect([first.status, replay.status]).toEqual([201, 201])
        expect(replay.headers.get("idempotent-replayed")).toBe("true")
        expect(first.headers.get("idempotent-replayed")).toBeNull()
        expect(replay.text).toBe(first.text)
        const reused = yield* api.call("/api/ops/market", {
          key: t.key,
          ...post({ ...market, btcPriceUsd: 1 }, key),
        })
        expect(reused.status).toBe(422)
        expect((reused.json as { type: string }).type).toBe(problemType("idempotency-key-reused"))
        expect(yield* count("market_data", t.id)).toBe(1)
        expect(yield* outboxOf(t.id)).toHaveLength(1)

        // The same for a PATCH: one change, one event, however often it is retried.
        const minerId = (
          (yield* api.call("/api/miners", { method: "POST", key: t.key, body: addMinerBody() })).json as {
            id: string
          }
        ).id
        const patch = () =>
          api.call(`/api/miners/${minerId}`, {
            method: "PATCH",
            key: t.key,
            body: JSON.stringify({ site: "iceland-1" }),
            headers: { "idempotency-key": "move-to-iceland" },
          })
        const [p1, p2] = [yield* patch(), yield* patch()]
        expect([p1.status, p2.status]).toEqual([200, 200])
        expect(p2.headers.get("idempotent-replayed")).toBe("true")
        expect((yield* outboxOf(t.id)).filter((e) => e.type === "MinerChanged")).toHaveLength(1)
      }),
  )

  effectTest(
    "a row never commits without its event: when the event cannot be appended, every write is a 503 and leaves nothing",
    () =>
      Effect.gen(function* () {
        const { db, inScratch, key } = yield* scratchTenant
        const api = yield* startApi(db.url)
        const exec = (statement: string) =>
          inScratch(Effect.flatMap(SqlClient.SqlClient, (sql) => sql.unsafe(statement)))
        const minerId = (
          (yield* api.call("/api/miners", { method: "POST", key, body: addMinerBody() })).json as {
            id: string
          }
        ).id
        const account = yield* api.call("/api/crm/accounts", {
          key,
          ...post({ accountId: "acct-1", userId: "u", name: "n", tier: "retail" }),
        })
        expect(account.status).toBe(200)
        const writes = () => [
          api.call(`/api/miners/${minerId}`, { method: "PATCH", key, body: JSON.stringify({ count: 5 }) }),
          api.call(`/api/miners/${minerId}/retire`, { method: "POST", key }),
          api.call("/api/ops/market", { key, ...post(market) }),
          api.call("/api/ops/incidents", { key, ...post({ site: "s", severity: "info", description: "d" }) }),
          api.call("/api/treasury/transactions", { key, ...post({ userId: "u", kind: "deposit", btc: 1 }) }),
          api.call("/api/crm/accounts", {
            key,
            ...post({ accountId: "acct-2", userId: "u", name: "n", tier: "pro" }),
          }),
          api.call("/api/crm/contacts", {
            key,
            ...post({ contactId: "c-1", accountId: "acct-1", email: "u@example.com", name: "U" }),
          }),
        ]
        const state = inScratch(
          Effect.flatMap(
            SqlClient.SqlClient,
            (sql) => sql<{ snapshot: string }>`SELECT concat_ws(',',
              (SELECT count(*) FROM event_outbox), (SELECT string_agg(count || status, ',') FROM miners),
              (SELECT count(*) FROM market_data), (SELECT count(*) FROM site_incidents),
              (SELECT count(*) FROM treasury_transactions), (SELECT count(*) FROM crm_accounts),
              (SELECT count(*) FROM crm_contacts)) AS snapshot`,
          ),
        )
        expect(yield* state).toEqual([{ snapshot: "2,3active,0,0,0,1,0" }])

        yield* exec("REVOKE INSERT ON event_outbox FROM hashinsight_app")
        for (const write of writes()) {
          const reply = yield* write
          expect([reply.status, (reply.json as { type: string }).type]).toEqual([
            503,
            problemType("unavailable"),
          ])
        }
        expect(yield* state).toEqual([{ snapshot: "2,3active,0,0,0,1,0" }])

        yield* exec("GRANT INSERT ON event_outbox TO hashinsight_app")
        expect((yield* Effect.all(writes())).map((r) => r.status)).toEqual([
          200, 200, 201, 201, 201, 200, 200,
        ])
        expect(yield* state).toEqual([{ snapshot: "9,5retired,1,1,1,2,1" }])
      }),
    { timeout: 30_000 },
  )
})
