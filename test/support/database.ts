/**
 * A throwaway database on the suite's PostgreSQL server, for tests that need a schema of their own
 * (migration runs, `psql -f`). Dropped when the scope closes.
 */
import { SqlClient } from "@effect/sql"
import { PgClient } from "@effect/sql-pg"
import { Effect, Layer, Redacted } from "effect"
import { uniqueId } from "./ids.ts"

export const scratchDatabase = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  const name = uniqueId("scratch").replaceAll("-", "_")
  yield* Effect.acquireRelease(sql.unsafe(`CREATE DATABASE ${name}`), () =>
    sql.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`).pipe(Effect.ignore),
  )
  const url = new URL(process.env.DATABASE_URL!)
  url.pathname = `/${name}`
  return { name, url: url.toString() }
})

/** A client layer for another database URL. */
export const clientFor = (url: string) => PgClient.layer({ url: Redacted.make(url), maxConnections: 4 })

export const withClient =
  (url: string) =>
  <A, E, R>(self: Effect.Effect<A, E, R>) =>
    Effect.provide(self, Layer.fresh(clientFor(url)))
