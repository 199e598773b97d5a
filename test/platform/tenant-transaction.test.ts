import { describe, expect } from "bun:test"
import { SqlClient } from "@effect/sql"
import { Effect } from "effect"
import { useTenant, withTenant } from "../../src/platform/db.ts"
import { effectTest } from "../support/effect.ts"

const tenantA = "0190f0d4-0000-7000-8000-00000000000a"
const tenantB = "0190f0d4-0000-7000-8000-00000000000b"

interface Seen {
  readonly role: string
  readonly tenant: string | null
  readonly tx: string
}

const seen = Effect.flatMap(SqlClient.SqlClient, (sql) =>
  Effect.map(
    sql<Seen>`SELECT current_user AS role, current_setting('app.tenant_id', true) AS tenant,
                     pg_current_xact_id()::text AS tx`,
    (rows) => rows[0]!,
  ),
)

describe("tenant transactions", () => {
  effectTest("withTenant runs as the RLS role with its tenant, and the session is itself again after", () =>
    Effect.gen(function* () {
      const inside = yield* withTenant(tenantA)(seen)
      expect(inside.role).toBe("hashinsight_app")
      expect(inside.tenant).toBe(tenantA)
      const after = yield* seen
      expect(after.role).not.toBe("hashinsight_app")
      expect(after.tenant ?? "").toBe("")
    }),
  )

  effectTest(
    "nested: the same tenant runs in the same transaction; another tenant is switched to and back",
    () =>
      Effect.gen(function* () {
        const [outer, sameTenant, other, back] = yield* withTenant(tenantA)(
          Effect.all([seen, withTenant(tenantA)(seen), withTenant(tenantB)(seen), seen]),
        )
        expect(sameTenant).toEqual(outer)
        expect(other.tenant).toBe(tenantB)
        expect(other.role).toBe("hashinsight_app")
        expect(other.tx).toBe(outer.tx)
        expect(back).toEqual(outer)
      }),
  )

  effectTest("useTenant switches an open transaction; a nested withTenant of that tenant stays in it", () =>
    Effect.gen(function* () {
      const [switched, nested] = yield* withTenant(tenantA)(
        Effect.zipRight(useTenant(tenantB), Effect.all([seen, withTenant(tenantB)(seen)])),
      )
      expect(switched.tenant).toBe(tenantB)
      expect(nested).toEqual(switched)
    }),
  )

  effectTest("a tenant id that is not a UUID is passed as a parameter, never spliced into SQL", () =>
    Effect.gen(function* () {
      const odd = "x', true); SELECT pg_sleep(5); --"
      const inside = yield* withTenant(odd)(seen)
      expect(inside.tenant).toBe(odd)
      expect(inside.role).toBe("hashinsight_app")
    }),
  )

  effectTest("a failure rolls the transaction back", () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const name = `tenant_tx_probe_${Date.now().toString(36)}`
      yield* sql.unsafe(`CREATE TABLE ${name} (n int)`)
      yield* sql.unsafe(`GRANT INSERT, SELECT ON ${name} TO hashinsight_app`)
      const failed = yield* withTenant(tenantA)(
        Effect.zipRight(sql.unsafe(`INSERT INTO ${name} VALUES (1)`), Effect.fail("boom" as const)),
      ).pipe(Effect.flip)
      expect(failed).toBe("boom")
      yield* withTenant(tenantA)(sql.unsafe(`INSERT INTO ${name} VALUES (2)`))
      const rows = yield* sql<{ n: number }>`SELECT n FROM ${sql(name)}`
      yield* sql.unsafe(`DROP TABLE ${name}`)
      expect(rows).toEqual([{ n: 2 }])
    }),
  )
})
