/**
 * The statement cache (pg-prepared.ts) on the production pool. The cases after the first run on a
 * pool of one connection, so every execution meets the statement that connection prepared: after
 * a migration changed the type of a column it returns, after the connection's statements were
 * dropped, and as another role or tenant under row-level security.
 */
import { describe, expect } from "bun:test"
import { SqlClient } from "@effect/sql"
import { Effect, Either } from "effect"
import { withTenant } from "../../src/platform/db.ts"
import { effectTest } from "../support/effect.ts"
import { uniqueId } from "../support/ids.ts"
import { inPool } from "../support/pool.ts"

const tenantA = "0190f0d4-0000-7000-8000-00000000c0a1"
const tenantB = "0190f0d4-0000-7000-8000-00000000c0b2"

/** A table of the test's own, dropped after. */
const scratchTable = (columns: string) =>
  Effect.acquireRelease(
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const name = uniqueId("prepared").replaceAll("-", "_")
      yield* sql.unsafe(`CREATE TABLE ${name} (${columns})`)
      return name
    }),
    (name) => Effect.orDie(Effect.flatMap(SqlClient.SqlClient, (sql) => sql.unsafe(`DROP TABLE ${name}`))),
  )

/** Where a statement text appears among the connection's protocol-level prepared statements. */
const preparedLike = (marker: string) =>
  Effect.flatMap(
    SqlClient.SqlClient,
    (sql) => sql<{ name: string; genericPlans: number }>`
      SELECT name, generic_plans::int AS "genericPlans" FROM pg_prepared_statements
      WHERE NOT from_sql AND statement LIKE ${`%${marker}%`}`,
  )

describe("statement cache", () => {
  effectTest(
    "a parameterized statement is prepared once per connection under a name; one without parameters is not",
    () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        // A text of its own, so no earlier test has prepared it on this connection.
        const marker = uniqueId("prepared")
        const prepared = yield* sql.withTransaction(
          Effect.gen(function* () {
            for (const n of [1, 2, 3]) {
              const [row] = yield* sql<{ n: number }>`SELECT ${n}::int AS n, ${marker}::text AS marker`
              expect(row?.n).toBe(n)
            }
            yield* sql.unsafe(`SELECT '${marker}' AS unparameterized`)
            return yield* sql<{ name: string; statement: string }>`
            SELECT name, statement FROM pg_prepared_statements WHERE NOT from_sql`
          }),
        )
        const mine = prepared.filter((p) => p.statement.includes("marker"))
        expect(mine.length).toBe(1)
        expect(mine[0]!.name).toStartWith("hashinsight_")
        expect(prepared.some((p) => p.statement.includes("unparameterized"))).toBe(false)
      }),
  )

  effectTest(
    "a migration changes the type of a column a prepared statement returns: the next execution answers in the new type, inside a transaction the next transaction does",
    () =>
      inPool(
        Effect.scoped(
          Effect.gen(function* () {
            const sql = yield* SqlClient.SqlClient
            const table = yield* scratchTable("id int, v int")
            yield* sql.unsafe(`INSERT INTO ${table} VALUES (1, 7)`)
            const read = sql<{ v: unknown }>`SELECT v FROM ${sql(table)} WHERE id = ${1}`
            for (let i = 0; i < 3; i++) expect(yield* read).toEqual([{ v: 7 }])
            yield* sql.unsafe(`ALTER TABLE ${table} ALTER COLUMN v TYPE text`)
            // Before: "cached plan must not change result type" on every execution until a reconnect.
            expect(yield* read).toEqual([{ v: "7" }])
            expect(yield* read).toEqual([{ v: "7" }])

            yield* sql.unsafe(`ALTER TABLE ${table} ALTER COLUMN v TYPE bigint USING v::bigint`)
            const first = yield* Effect.either(sql.withTransaction(read))
            expect(Either.isLeft(first) && (first.left.cause as { code?: string }).code).toBe("0A000")
            expect(yield* sql.withTransaction(read)).toEqual([{ v: "7" }])
            expect(yield* read).toEqual([{ v: "7" }])
          }),
        ),
      ),
  )

  effectTest("the connection's statements dropped (DISCARD ALL): the next execution prepares again", () =>
    inPool(
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const marker = uniqueId("discarded")
        const read = sql.unsafe<{ n: number }>(`SELECT $1::int AS n, '${marker}' AS marker`, [5])
        for (let i = 0; i < 2; i++) expect((yield* read)[0]!.n).toBe(5)
        yield* sql.unsafe("DISCARD ALL")
        // Before: 'prepared statement "hashinsight_N" does not exist' on every execution.
        expect((yield* read)[0]!.n).toBe(5)
        expect((yield* read)[0]!.n).toBe(5)
        expect((yield* preparedLike(marker)).length).toBe(1)
      }),
    ),
  )

  effectTest(
    "one statement run as the operator and as the RLS role for one tenant and another, on generic plans: each sees what its role and tenant may",
    () =>
      inPool(
        Effect.scoped(
          Effect.gen(function* () {
            const sql = yield* SqlClient.SqlClient
            const table = yield* scratchTable("tenant_id uuid, n int")
            yield* sql.unsafe(`ALTER TABLE ${table} ENABLE ROW LEVEL SECURITY`)
            yield* sql.unsafe(`CREATE POLICY by_tenant ON ${table}
            USING (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid)`)
            yield* sql.unsafe(`GRANT SELECT ON ${table} TO hashinsight_app`)
            yield* sql.unsafe(`INSERT INTO ${table} VALUES ('${tenantA}', 1), ('${tenantB}', 2)`)
            // Session-wide on the pool's one connection, which this test's pool ends after.
            yield* sql.unsafe("SET plan_cache_mode = force_generic_plan")
            const marker = uniqueId("rls")
            const read = Effect.map(
              sql.unsafe<{ n: number }>(
                `SELECT n, '${marker}' AS marker FROM ${table} WHERE n > $1 ORDER BY n`,
                [0],
              ),
              (rows) => rows.map((r) => r.n),
            )
            for (let i = 0; i < 3; i++) {
              expect(yield* read).toEqual([1, 2])
              expect(yield* withTenant(tenantA)(read)).toEqual([1])
              expect(yield* withTenant(tenantB)(read)).toEqual([2])
            }
            const prepared = yield* preparedLike(marker)
            expect(prepared.length).toBe(1)
            expect(prepared[0]!.genericPlans).toBeGreaterThan(0)
          }),
        ),
      ),
  )
})
