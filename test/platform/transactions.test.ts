/**
 * The process's database path (`Db.layerConfig`: our pool, socket and statement cache) and the
 * transactions `withTenant` builds on it: BEGIN with the tenant's settings, COMMIT or ROLLBACK,
 * SAVEPOINTs when nested, and a pooled connection that never goes to its next borrower inside a
 * transaction, failed or not. Each test has a pool of one connection, so the next borrower is the
 * same connection unless the pool dropped it.
 */
import { afterAll, beforeAll, describe, expect } from "bun:test"
import { SqlClient } from "@effect/sql"
import { Deferred, Effect, Fiber } from "effect"
import Pg from "pg"
import { withTenant } from "../../src/platform/db.ts"
import { effectTest } from "../support/effect.ts"
import { uniqueId } from "../support/ids.ts"
import { inPool } from "../support/pool.ts"

const tenantA = "0190f0d4-0000-7000-8000-0000000000a1"
const tenantB = "0190f0d4-0000-7000-8000-0000000000b2"
const table = `tx_test_${Date.now().toString(36)}`
const admin = new Pg.Client({ connectionString: process.env.DATABASE_URL })

const rows = async () =>
  (await admin.query<{ n: number }>(`SELECT n FROM ${table} ORDER BY n`)).rows.map((r) => r.n)

const insert = (n: number) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) => sql`INSERT INTO ${sql(table)} VALUES (${n})`)

/** What the connection looks like to its next borrower. */
const session = Effect.flatMap(SqlClient.SqlClient, (sql) =>
  Effect.map(
    sql<{ inTransaction: boolean; role: string; pid: number }>`
      SELECT now() <> statement_timestamp() AS "inTransaction", current_user AS role,
             pg_backend_pid() AS pid`,
    (r) => r[0]!,
  ),
)

const outsideAnyTransaction = { inTransaction: false, role: "postgres" }

beforeAll(async () => {
  await admin.connect()
  await admin.query(`CREATE TABLE ${table} (n int)`)
  await admin.query(`GRANT SELECT, INSERT ON ${table} TO hashinsight_app`)
})
afterAll(async () => {
  await admin.query(`DROP TABLE IF EXISTS ${table}`)
  await admin.end()
})

const clear = Effect.promise(() => admin.query(`DELETE FROM ${table}`))

describe("transactions on the process's pool", () => {
  effectTest("withTenant opens with BEGIN and the tenant's settings and ends with COMMIT", () =>
    inPool(
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const inside = yield* withTenant(tenantA)(
          Effect.zipRight(
            insert(1),
            sql<{ role: string; tenant: string; inTransaction: boolean }>`
              SELECT current_user AS role, current_setting('app.tenant_id', true) AS tenant,
                     now() <> statement_timestamp() AS "inTransaction"`,
          ),
        )
        expect(inside[0]).toEqual({ role: "hashinsight_app", tenant: tenantA, inTransaction: true })
        // Committed: another session sees it.
        expect(yield* Effect.promise(rows)).toEqual([1])
        expect(yield* session).toMatchObject(outsideAnyTransaction)
      }),
    ).pipe(Effect.ensuring(clear)),
  )

  effectTest(
    "a failed body is rolled back: nothing it wrote stays, and the connection comes back clean",
    () =>
      inPool(
        Effect.gen(function* () {
          const failed = yield* Effect.flip(
            withTenant(tenantA)(Effect.zipRight(insert(2), Effect.fail("the body's own failure" as const))),
          )
          expect(failed).toBe("the body's own failure")
          expect(yield* Effect.promise(rows)).toEqual([])
          expect(yield* session).toMatchObject(outsideAnyTransaction)
        }),
      ),
  )

  effectTest(
    "a transaction failed on the server but ended as a success (the error caught) is rolled back, never handed out inside it",
    () =>
      inPool(
        Effect.gen(function* () {
          const sql = yield* SqlClient.SqlClient
          yield* withTenant(tenantA)(
            Effect.gen(function* () {
              yield* insert(3)
              yield* Effect.ignore(sql`SELECT 1 / ${0}::int`)
            }),
          )
          expect(yield* Effect.promise(rows)).toEqual([])
          // Not "current transaction is aborted": the next borrower's statements run.
          expect(yield* session).toMatchObject(outsideAnyTransaction)
          yield* insert(4)
          expect(yield* Effect.promise(rows)).toEqual([4])
        }),
      ).pipe(Effect.ensuring(clear)),
  )

  effectTest(
    "another tenant inside a transaction runs under a SAVEPOINT: its failure rolls back to it, and the outer tenant's work commits",
    () =>
      inPool(
        Effect.gen(function* () {
          const sql = yield* SqlClient.SqlClient
          const tenantAfter = yield* withTenant(tenantA)(
            Effect.gen(function* () {
              yield* insert(5)
              const inner = yield* Effect.flip(
                withTenant(tenantB)(Effect.zipRight(insert(6), Effect.fail("inner" as const))),
              )
              expect(inner).toBe("inner")
              yield* withTenant(tenantB)(insert(7))
              const [row] = yield* sql<{ tenant: string }>`SELECT current_setting('app.tenant_id') AS tenant`
              return row!.tenant
            }),
          )
          expect(tenantAfter).toBe(tenantA)
          expect(yield* Effect.promise(rows)).toEqual([5, 7])
          expect(yield* session).toMatchObject(outsideAnyTransaction)
        }),
      ).pipe(Effect.ensuring(clear)),
  )

  effectTest("an interrupted transaction is rolled back and its connection handed out clean", () =>
    inPool(
      Effect.gen(function* () {
        const wrote = yield* Deferred.make<void>()
        const fiber = yield* Effect.fork(
          withTenant(tenantA)(
            Effect.zipRight(insert(8), Effect.zipRight(Deferred.succeed(wrote, undefined), Effect.never)),
          ),
        )
        yield* Deferred.await(wrote)
        yield* Fiber.interrupt(fiber)
        expect(yield* Effect.promise(rows)).toEqual([])
        expect(yield* session).toMatchObject(outsideAnyTransaction)
      }),
    ),
  )

  effectTest(
    "a backend terminated inside a transaction: the transaction fails, and its connection is dropped rather than handed out",
    () =>
      inPool(
        Effect.gen(function* () {
          const sql = yield* SqlClient.SqlClient
          const before = yield* session
          const failed = yield* Effect.flip(
            withTenant(tenantA)(
              Effect.gen(function* () {
                yield* insert(9)
                yield* Effect.promise(() => admin.query("SELECT pg_terminate_backend($1)", [before.pid]))
                return yield* sql`SELECT 1`
              }),
            ),
          )
          expect(failed._tag).toBe("SqlError")
          expect(yield* Effect.promise(rows)).toEqual([])
          const after = yield* session
          expect(after).toMatchObject(outsideAnyTransaction)
          expect(after.pid).not.toBe(before.pid)
        }),
      ),
  )

  effectTest("a text of several statements runs whole, as sent: BEGIN; INSERT …; COMMIT", () =>
    inPool(
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const marker = uniqueId("several")
        yield* sql.unsafe(`BEGIN; INSERT INTO ${table} VALUES (10); COMMIT; SELECT '${marker}'`)
        expect(yield* Effect.promise(rows)).toEqual([10])
        expect(yield* session).toMatchObject(outsideAnyTransaction)
      }),
    ).pipe(Effect.ensuring(clear)),
  )
})
