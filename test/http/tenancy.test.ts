import { describe, expect } from "bun:test"
import { SqlClient } from "@effect/sql"
import { Effect } from "effect"
import { withTenant } from "../../src/platform/db.ts"
import { effectTest } from "../support/effect.ts"
import { addMinerBody, newTenant, startApi } from "./support.ts"

describe("tenant isolation", () => {
  effectTest("tenant A cannot read, list or guess tenant B's miners through the API", () =>
    Effect.gen(function* () {
      const api = yield* startApi()
      const [a, b] = [yield* newTenant, yield* newTenant]
      const bMiner = (yield* api.call("/api/miners", {
        method: "POST",
        key: b.key,
        body: addMinerBody({ userId: "shared-user" }),
      })).json as { id: string }
      const aMiner = (yield* api.call("/api/miners", {
        method: "POST",
        key: a.key,
        body: addMinerBody({ userId: "shared-user" }),
      })).json as { id: string }

      const aList = (yield* api.call("/api/miners?userId=shared-user", { key: a.key })).json as Array<{
        id: string
      }>
      expect(aList.map((m) => m.id)).toEqual([aMiner.id])
      const aAll = (yield* api.call("/api/miners", { key: a.key })).json as Array<{ id: string }>
      expect(aAll.map((m) => m.id)).toEqual([aMiner.id])
      // B's id looks exactly like an id that does not exist: nothing to infer from.
      const probe = yield* api.call(`/api/miners/${bMiner.id}`, { key: a.key })
      const missing = yield* api.call("/api/miners/0190a000-0000-7000-8000-000000000000", { key: a.key })
      expect(probe.status).toBe(404)
      expect(missing.status).toBe(404)
      expect((probe.json as { title: string }).title).toBe((missing.json as { title: string }).title)
      // The same Idempotency-Key in two tenants is two keys.
      const key = { "idempotency-key": "same-key-both-tenants" }
      const ka = yield* api.call("/api/miners", {
        method: "POST",
        key: a.key,
        body: addMinerBody(),
        headers: key,
      })
      const kb = yield* api.call("/api/miners", {
        method: "POST",
        key: b.key,
        body: addMinerBody(),
        headers: key,
      })
      expect([ka.status, kb.status]).toEqual([201, 201])
      expect(kb.headers.get("idempotent-replayed")).toBeNull()
      expect((ka.json as { id: string }).id).not.toBe((kb.json as { id: string }).id)
    }),
  )

  effectTest("SQL under the request role sees, updates and inserts only its tenant's rows", () =>
    Effect.gen(function* () {
      const api = yield* startApi()
      const sql = yield* SqlClient.SqlClient
      const [a, b] = [yield* newTenant, yield* newTenant]
      const bMiner = (yield* api.call("/api/miners", {
        method: "POST",
        key: b.key,
        body: addMinerBody(),
        headers: { "idempotency-key": "b-key" },
      })).json as { id: string }

      const asA = withTenant(a.id)
      const role = yield* asA(
        sql<{ rolsuper: boolean; rolbypassrls: boolean; user: string }>`
          SELECT rolsuper, rolbypassrls, current_user AS user FROM pg_roles WHERE rolname = current_user`,
      )
      expect(role).toEqual([{ rolsuper: false, rolbypassrls: false, user: "hashinsight_app" }])

      expect(yield* asA(sql`SELECT id FROM miners WHERE id = ${bMiner.id}`)).toEqual([])
      expect(yield* asA(sql`SELECT id FROM event_outbox WHERE aggregateid = ${bMiner.id}`)).toEqual([])
      expect(
        yield* asA(sql`SELECT idempotency_key FROM idempotency_records WHERE tenant_id = ${b.id}`),
      ).toEqual([])
      expect(yield* asA(sql`SELECT id FROM tenants WHERE id = ${b.id}`)).toEqual([])
      const updated = yield* asA(sql`UPDATE miners SET count = 999 WHERE id = ${bMiner.id} RETURNING id`)
      expect(updated).toEqual([])
      const forged = yield* asA(
        sql`INSERT INTO miners (id, tenant_id, user_id, model_id, count, site, power_price_usd_per_kwh)
            VALUES (${Bun.randomUUIDv7()}, ${b.id}, 'x', 'antminer-s21', 1, 's', 0)`,
      ).pipe(Effect.flip)
      expect(String((forged.cause as { message?: string }).message)).toContain("row-level security")
      const [still] = yield* sql<{ count: number }>`SELECT count FROM miners WHERE id = ${bMiner.id}`
      expect(still?.count).toBe(3)

      // No tenant set: fail closed.
      const none = yield* sql.withTransaction(
        Effect.zipRight(sql`SET LOCAL ROLE hashinsight_app`, sql`SELECT count(*)::int AS n FROM miners`),
      )
      expect(none).toEqual([{ n: 0 }])
    }),
  )
})
