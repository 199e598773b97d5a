/**
 * PostgreSQL through `@effect/sql-pg`: one pooled client for the process. Two roles matter
 * (created by migration 003): `hashinsight_app` — no superuser, no BYPASSRLS — for tenant work,
 * and the connecting (operator) role for the relay, migrations and operator tools.
 */
import { SqlClient, type SqlConnection, SqlError } from "@effect/sql"
import { PgClient } from "@effect/sql-pg"
import { Duration, Effect, FiberRef, Layer, Metric, Option, Redacted, Schedule, Scope } from "effect"
import Pg from "pg"
import { AppConfig } from "./config.ts"
import { poolConnections, poolIdle, poolMax, poolWaiting } from "./metrics.ts"
import { PreparingClient } from "./pg-prepared.ts"
import { coalescingSocket } from "./pg-socket.ts"

export const appRole = "hashinsight_app"

const connectTimeout = Duration.seconds(5)

/**
 * The process's pool: our socket (pg-socket.ts) and client (pg-prepared.ts: the statement cache,
 * and a client whose backend sent FATAL dropped rather than pooled), which `PgClient.layer` has no
 * options for; checked with one query before anyone uses it, as `PgClient.layer` does.
 */
const pool = (url: Redacted.Redacted<string>, max: number) =>
  Effect.acquireRelease(
    Effect.gen(function* () {
      const pool = new Pg.Pool({
        connectionString: Redacted.value(url),
        max,
        idleTimeoutMillis: 30_000,
        connectionTimeoutMillis: Duration.toMillis(connectTimeout),
        application_name: "hashinsight",
        stream: coalescingSocket,
        Client: PreparingClient,
      })
      // A broken idle connection is dropped by the pool; the next checkout reports any trouble.
      pool.on("error", () => {})
      yield* Effect.tryPromise({
        try: () => pool.query("SELECT 1"),
        catch: (cause) => new SqlError.SqlError({ cause, message: "PgClient: Failed to connect" }),
      }).pipe(
        Effect.timeoutFail({
          duration: connectTimeout,
          onTimeout: () =>
            new SqlError.SqlError({
              cause: new Error("Connection timed out"),
              message: "PgClient: Connection timed out",
            }),
        }),
        Effect.tapError(() => Effect.promise(() => pool.end())),
      )
      return pool
    }),
    // pool.end() waits for every checked-out connection to come back, which one with a statement in
    // flight on a hung server never does; a release runs uninterruptibly, so without `interruptible`
    // the timeout could not cut it short.
    (pool) =>
      Effect.promise(() => pool.end()).pipe(Effect.interruptible, Effect.timeoutOption(Duration.seconds(1))),
  ).pipe(Effect.tap((p) => Effect.forkScoped(reportPool(p, max))))

/** The pool's figures as gauges, every second (pg-pool emits no event when a checkout starts waiting). */
const reportPool = (pool: Pg.Pool, max: number) =>
  Effect.suspend(() =>
    Effect.all([
      Metric.set(poolConnections, pool.totalCount),
      Metric.set(poolIdle, pool.idleCount),
      Metric.set(poolWaiting, pool.waitingCount),
      Metric.set(poolMax, max),
    ]),
  ).pipe(Effect.repeat(Schedule.spaced(Duration.seconds(1))))

/** The process's `SqlClient` (`@effect/sql-pg` on our pool), from `AppConfig`. */
const layerConfig = Layer.unwrapEffect(
  Effect.map(AppConfig, (c) =>
    PgClient.layerFromPool({ acquire: pool(c.databaseUrl, c.dbPoolMax), applicationName: "hashinsight" }),
  ),
)

export const Db = { layerConfig }

/** Cheap liveness probe for health checks. */
export const dbProbe = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  yield* sql`SELECT 1`
}).pipe(Effect.timeout(Duration.seconds(2)))

const uuidShape = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

/** The tenant set in the open transaction, keyed by that transaction (its connection entry). */
const tenantOfTransaction = FiberRef.unsafeMake<
  { readonly tx: unknown; readonly tenantId: string } | undefined
>(undefined)

const setTenantStatement = (tenantId: string) =>
  `SELECT set_config('role', '${appRole}', true), set_config('app.tenant_id', '${tenantId}', true)`

/**
 * A COMMIT that failed without the server rejecting it: the connection was lost while the
 * transaction ended (a restart, a terminated backend, a crash), and it may have committed — the
 * commit record written, the reply lost. Only what the transaction stored can tell (for a keyed
 * write its Idempotency-Key record, which a retry with the key reads). A SqlError still, so whatever
 * handles those handles it.
 */
export class CommitOutcomeUnknown extends SqlError.SqlError {}

export const isCommitOutcomeUnknown = (e: SqlError.SqlError) => e instanceof CommitOutcomeUnknown

/**
 * A failed COMMIT or ROLLBACK on its way out of `makeWithTransaction`, which turns it into a defect:
 * a connection lost mid-transaction would be an unexpected error (a 500) rather than the database
 * failure it is. `withTenant` makes it the SqlError again.
 */
class TransactionEndFailed {
  constructor(readonly error: SqlError.SqlError) {}
}

/** An ERROR in answer to COMMIT means the server rolled the transaction back. */
const rejectedByServer = (e: SqlError.SqlError) =>
  (e.cause as { readonly severity?: unknown } | undefined)?.severity === "ERROR"

const endTransaction = (conn: SqlConnection.Connection, statement: string) =>
  conn.executeUnprepared(statement, [], undefined).pipe(
    Effect.catchAll((e) =>
      Effect.die(
        new TransactionEndFailed(
          statement !== "COMMIT" || rejectedByServer(e)
            ? e
            : new CommitOutcomeUnknown({
                cause: e.cause,
                message: "Connection lost during COMMIT: the transaction may have committed",
              }),
        ),
      ),
    ),
  )

/**
 * A transaction whose BEGIN (or SAVEPOINT, nested) is followed by `opening` in the same text: with
 * the role and tenant set there, `BEGIN; SELECT set_config(…)` is one round trip, not two.
 */
const transactionOpening = (opening: string) =>
  Effect.map(SqlClient.SqlClient, (sql) =>
    SqlClient.makeWithTransaction({
      transactionTag: SqlClient.TransactionConnection,
      spanAttributes: [],
      acquireConnection: Effect.flatMap(Scope.make(), (scope) =>
        Effect.map(Scope.extend(sql.reserve, scope), (conn) => [scope, conn] as const),
      ),
      begin: (conn) => conn.executeUnprepared(`BEGIN${opening}`, [], undefined),
      savepoint: (conn, id) => conn.executeUnprepared(`SAVEPOINT effect_sql_${id}${opening}`, [], undefined),
      commit: (conn) => endTransaction(conn, "COMMIT"),
      rollback: (conn) => endTransaction(conn, "ROLLBACK"),
      rollbackSavepoint: (conn, id) => endTransaction(conn, `ROLLBACK TO SAVEPOINT effect_sql_${id}`),
    }),
  )

/**
 * `self` in a transaction opened by `opening`; a failed end fails it with that SqlError — or, when
 * it was the ROLLBACK after `self` failed, with `self`'s own failure, which says what went wrong
 * (the ROLLBACK only fails because the connection is already gone).
 */
const inTransactionOpening =
  (opening: string) =>
  <A, E, R>(self: Effect.Effect<A, E, R>) =>
    Effect.suspend(() => {
      let failed: Option.Option<E> = Option.none()
      const kept = Effect.tapError(self, (e) => Effect.sync(() => (failed = Option.some(e))))
      return Effect.flatMap(transactionOpening(opening), (transaction) => transaction(kept)).pipe(
        Effect.catchSomeDefect((defect) =>
          defect instanceof TransactionEndFailed
            ? Option.some(Effect.fail(Option.getOrElse(failed, () => defect.error)))
            : Option.none(),
        ),
      )
    })

/** The same settings as a parameterized statement, in the caller's open transaction. */
const setTenant = (sql: SqlClient.SqlClient, tenantId: string) =>
  sql`SELECT set_config('role', ${appRole}, true), set_config('app.tenant_id', ${tenantId}, true)`.pipe(
    Effect.asVoid,
  )

/**
 * Inside an open transaction: switches it to the RLS-bound role and `tenantId`, transaction-locally
 * (a no-op when it is there already). For code that serves several tenants in one transaction, in
 * order — the consumer runtime's chunks.
 */
export const useTenant = (tenantId: string) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const tx = Option.getOrUndefined(yield* Effect.serviceOption(SqlClient.TransactionConnection))
    if (tx === undefined) return yield* Effect.dieMessage("useTenant outside a transaction")
    const current = yield* FiberRef.get(tenantOfTransaction)
    if (current?.tx === tx && current.tenantId === tenantId) return
    yield* setTenant(sql, tenantId)
    yield* FiberRef.set(tenantOfTransaction, { tx, tenantId })
  })

/**
 * Runs `self` in a transaction as the RLS-bound role with the tenant set transaction-locally,
 * so nothing it does can see or write another tenant's rows; no tenant → no rows. Opening it costs
 * one round trip (BEGIN and the settings in one text). Inside a transaction already serving `tenantId` it simply runs there (no
 * savepoint); inside one serving another tenant it runs under a savepoint and switches back after.
 */
export const withTenant =
  (tenantId: string) =>
  <A, E, R>(self: Effect.Effect<A, E, R>) =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const outer = Option.getOrUndefined(yield* Effect.serviceOption(SqlClient.TransactionConnection))
      const current = yield* FiberRef.get(tenantOfTransaction)
      const serving = outer !== undefined && current?.tx === outer ? current.tenantId : undefined
      if (serving === tenantId) return yield* self
      const body = Effect.flatMap(Effect.serviceOption(SqlClient.TransactionConnection), (tx) =>
        Effect.locally(self, tenantOfTransaction, { tx: Option.getOrUndefined(tx), tenantId }),
      )
      // Only a UUID-shaped tenant id is ever written into the text; anything else is a parameter.
      const inTransaction = uuidShape.test(tenantId)
        ? inTransactionOpening(`; ${setTenantStatement(tenantId)}`)(body)
        : inTransactionOpening("")(Effect.zipRight(setTenant(sql, tenantId), body))
      if (serving === undefined) return yield* inTransaction
      // The savepoint's setting outlives it when it succeeds: put the outer tenant back.
      return yield* Effect.tap(inTransaction, () => setTenant(sql, serving))
    })
