/**
 * PostgreSQL through `@effect/sql-pg`: one pooled client for the process. Two roles matter
 * (created by migration 003): `hashinsight_app` — no superuser, no BYPASSRLS — for tenant work,
 * and the connecting (operator) role for the relay, migrations and operator tools.
 */
import { SqlClient } from "@effect/sql"
import { PgClient } from "@effect/sql-pg"
import { Duration, Effect, Layer } from "effect"
import { AppConfig } from "./config.ts"
import { coalescingSocket } from "./pg-socket.ts"

export const appRole = "hashinsight_app"

export const DbLive = Layer.unwrapEffect(
  Effect.map(AppConfig, (c) =>
    PgClient.layer({
      url: c.databaseUrl,
      maxConnections: c.dbPoolMax,
      idleTimeout: Duration.seconds(30),
      connectTimeout: Duration.seconds(5),
      applicationName: "hashinsight",
      stream: coalescingSocket,
    }),
  ),
)

/** Cheap liveness probe for health checks. */
export const dbProbe = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  yield* sql`SELECT 1`
}).pipe(Effect.timeout(Duration.seconds(2)))

/**
 * Runs `self` in a transaction as the RLS-bound role with the tenant set transaction-locally,
 * so nothing it does can see or write another tenant's rows; no tenant → no rows.
 */
export const withTenant =
  (tenantId: string) =>
  <A, E, R>(self: Effect.Effect<A, E, R>) =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      return yield* sql.withTransaction(
        Effect.gen(function* () {
          // One round trip: `role` set transaction-locally is SET LOCAL ROLE.
          yield* sql`SELECT set_config('role', ${appRole}, true), set_config('app.tenant_id', ${tenantId}, true)`
          return yield* self
        }),
      )
    })
