/**
 * The process's database path (`Db.layerConfig`: our pool, socket and statement cache) and the
 * transactions `withTenant` builds on it: BEGIN with the tenant's settings, COMMIT or ROLLBACK,
 * SAVEPOINTs when nested, and a pooled connection that never goes to its next borrower inside a
 * transaction, failed or not. Each test has a pool of one connection, so the next borrower is the
 * same connection unless the pool dropped it.
 */
import { afterAll, beforeAll, describe, expect } from "bun:test"
import { SqlClient } from "@effect/sql"
import { SqlError } from "@effect/sql/SqlError"
import { Cause, Deferred, Effect, Fiber } from "effect"
import Pg from "pg"
import { isCommitOutcomeUnknown, withTenant } from "../../src/platform/db.ts"
import { sqlStateOf } from "../../src/platform/sql-errors.ts"
import { scratchDatabase, withClient } from "../support/database.ts"
import { effectTest } from "../support/effect.ts"
import { uniqueId } from "../support/ids.ts"
import { inPool, poolOf } from "../support/pool.ts"

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
    "interrupted while it waits for the pool's connection: it still opens (BEGIN runs uninterruptibly), is interrupted before its first statement, and rolls back",
    () =>
      inPool(
        Effect.gen(function* () {
          const sql = yield* SqlClient.SqlClient
          const holding = yield* Deferred.make<void>()
          const release = yield* Deferred.make<void>()
          const holder = yield* Effect.fork(
            sql.withTransaction(
              Effect.zipRight(Deferred.succeed(holding, undefined), Deferred.await(release)),
            ),
          )
          yield* Deferred.await(holding)
          let ran = false
          const waiting = yield* Effect.fork(
            withTenant(tenantA)(
              Effect.zipRight(
                Effect.sync(() => (ran = true)),
                insert(11),
              ),
            ),
          )
          yield* Effect.sleep("50 millis")
          const interrupting = yield* Effect.fork(Fiber.interrupt(waiting))
          yield* Effect.sleep("50 millis")
          yield* Deferred.succeed(release, undefined)
          yield* Fiber.join(holder)
          yield* Fiber.join(interrupting)
          expect(ran).toBe(false)
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

describe("tenant transactions under concurrency, interruptions and terminated backends", () => {
  effectTest(
    "24 fibers on a pool of 3, interrupted at random moments while backends are terminated at random: no borrower is handed a connection inside a transaction or a failed one, each sees its own tenant, and what committed is there",
    () =>
      Effect.gen(function* () {
        const db = yield* scratchDatabase
        yield* withClient(db.url)(
          Effect.flatMap(SqlClient.SqlClient, (sql) =>
            sql.unsafe(`CREATE TABLE stress (fiber int, n int, tenant text, PRIMARY KEY (fiber, n));
              GRANT SELECT, INSERT ON stress TO hashinsight_app`),
          ),
        )
        const suite = yield* SqlClient.SqlClient
        const outcomes: Array<{ fiber: number; n: number; committed: boolean | undefined }> = []
        const violations: Array<unknown> = []
        const counts = { terminated: 0, interrupted: 0, committed: 0, failed: 0, handedOut: 0 }
        let running = true

        const attempt = (sql: SqlClient.SqlClient, fiber: number, n: number) => {
          const tenant = fiber % 2 === 0 ? tenantA : tenantB
          return withTenant(tenant)(
            Effect.gen(function* () {
              const [inside] = yield* sql<{ role: string; tenant: string }>`
                SELECT current_user AS role, current_setting('app.tenant_id') AS tenant`
              if (inside!.role !== "hashinsight_app" || inside!.tenant !== tenant)
                violations.push({ fiber, n, inside, why: "another role or tenant inside" })
              yield* sql`INSERT INTO stress VALUES (${fiber}, ${n}, ${tenant})`
              if (n % 4 === 3) return yield* Effect.fail("the body's own failure" as const)
            }),
          )
        }
        const worker = (fiber: number) =>
          Effect.gen(function* () {
            const sql = yield* SqlClient.SqlClient
            for (let n = 0; running; n++) {
              // What a borrower outside any transaction is handed.
              const handed = yield* Effect.either(session)
              if (handed._tag === "Right") {
                counts.handedOut++
                if (handed.right.inTransaction || handed.right.role !== "postgres")
                  violations.push({ fiber, n, handed: handed.right, why: "handed out inside a transaction" })
              } else if (sqlStateOf(handed.left) === "25P02")
                violations.push({ fiber, n, why: "handed out in a failed transaction" })
              if (n % 3 === 0) {
                const running = yield* Effect.fork(attempt(sql, fiber, n))
                yield* Effect.sleep(`${Math.floor(Math.random() * 3)} millis`)
                yield* Fiber.interrupt(running)
                counts.interrupted++
                // Interrupted during its COMMIT (which runs uninterruptibly), it may have committed.
                outcomes.push({ fiber, n, committed: undefined })
                continue
              }
              const exit = yield* Effect.exit(attempt(sql, fiber, n))
              if (exit._tag === "Success") counts.committed++
              else counts.failed++
              const unknown =
                exit._tag === "Failure" &&
                Cause.failureOption(exit.cause).pipe(
                  (e) => e._tag === "Some" && e.value instanceof SqlError && isCommitOutcomeUnknown(e.value),
                )
              outcomes.push({ fiber, n, committed: unknown ? undefined : exit._tag === "Success" })
            }
          })
        const terminator = Effect.gen(function* () {
          while (running) {
            const rows = yield* suite`SELECT pg_terminate_backend(pid) FROM pg_stat_activity
              WHERE pid = (SELECT pid FROM pg_stat_activity WHERE datname = ${db.name}
                AND application_name = 'hashinsight' ORDER BY random() LIMIT 1)`
            counts.terminated += rows.length
            yield* Effect.sleep(`${5 + Math.floor(Math.random() * 20)} millis`)
          }
        })

        yield* Effect.gen(function* () {
          const workers = yield* Effect.fork(
            Effect.all(
              Array.from({ length: 24 }, (_, i) => worker(i)),
              { concurrency: "unbounded" },
            ),
          )
          const terminating = yield* Effect.fork(terminator)
          yield* Effect.sleep("4 seconds")
          running = false
          yield* Fiber.join(terminating)
          yield* Fiber.join(workers)
          // Every connection the pool holds now, taken at once: each is clean.
          const last = yield* Effect.all(
            [0, 1, 2].map(() =>
              Effect.flatMap(SqlClient.SqlClient, (sql) =>
                sql.withTransaction(Effect.zipRight(Effect.sleep("50 millis"), Effect.succeed(true))),
              ),
            ),
            { concurrency: "unbounded" },
          )
          expect(last).toEqual([true, true, true])
          expect(yield* session).toMatchObject(outsideAnyTransaction)
        }).pipe(Effect.provide(poolOf(3, db.url)))

        const stored = yield* withClient(db.url)(
          Effect.flatMap(
            SqlClient.SqlClient,
            (sql) => sql<{ fiber: number; n: number; tenant: string }>`SELECT fiber, n, tenant FROM stress`,
          ),
        )
        const have = new Set(stored.map((r) => `${r.fiber}/${r.n}`))
        const wrong = outcomes.filter(
          (o) => o.committed !== undefined && o.committed !== have.has(`${o.fiber}/${o.n}`),
        )
        expect(violations).toEqual([])
        expect(wrong).toEqual([])
        expect(stored.filter((r) => r.tenant !== (r.fiber % 2 === 0 ? tenantA : tenantB))).toEqual([])
        expect(counts.terminated).toBeGreaterThan(30)
        expect(counts.committed).toBeGreaterThan(30)
        expect(counts.failed).toBeGreaterThan(30)
      }),
    { timeout: 90_000 },
  )
})
