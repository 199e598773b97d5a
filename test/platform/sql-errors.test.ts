import { describe, expect } from "bun:test"
import { SqlClient } from "@effect/sql"
import { PgClient } from "@effect/sql-pg"
import { Effect, Redacted } from "effect"
import {
  errorCodeOf,
  isCheckoutFailure,
  isForeignKeyViolation,
  isPoolExhausted,
  isSqlError,
  sqlStateOf,
} from "../../src/platform/sql-errors.ts"
import { effectTest } from "../support/effect.ts"

/** The failure of `self`, which must fail. */
const failureOf = <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.flip(self)

describe("sql-errors", () => {
  effectTest(
    "a statement PostgreSQL refused carries its SQLSTATE: a foreign key (23503), a unique key (23505)",
    () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const [fk, unique] = yield* sql.withTransaction(
          Effect.gen(function* () {
            yield* sql`CREATE TEMP TABLE parent (id int PRIMARY KEY) ON COMMIT DROP`
            yield* sql`CREATE TEMP TABLE child (parent int REFERENCES parent) ON COMMIT DROP`
            yield* sql`INSERT INTO parent VALUES (1)`
            const fk = yield* failureOf(sql.withTransaction(sql`INSERT INTO child VALUES (${2})`))
            const unique = yield* failureOf(sql.withTransaction(sql`INSERT INTO parent VALUES (${1})`))
            return [fk, unique] as const
          }),
        )
        expect(isSqlError(fk)).toBe(true)
        expect(sqlStateOf(fk)).toBe("23503")
        expect(isForeignKeyViolation(fk)).toBe(true)
        expect(sqlStateOf(unique)).toBe("23505")
        expect(isForeignKeyViolation(unique)).toBe(false)
        // Wrapped again (a consumer's chunk failure, a relay error): still found along the causes.
        expect(sqlStateOf(new Error("chunk failed", { cause: unique }))).toBe("23505")
        expect(isPoolExhausted(unique)).toBe(false)
      }),
  )

  effectTest(
    "a connection never made has no SQLSTATE, only the socket's code; a waiting checkout says the pool is exhausted",
    () =>
      Effect.gen(function* () {
        const refused = yield* failureOf(
          Effect.provide(
            SqlClient.SqlClient,
            PgClient.layer({ url: Redacted.make("postgres://postgres@127.0.0.1:1/none") }),
          ),
        )
        expect(sqlStateOf(refused)).toBeUndefined()
        expect(errorCodeOf(refused)).toBe("ECONNREFUSED")
        expect(isPoolExhausted(refused)).toBe(false)

        const oneConnection = PgClient.layer({
          url: Redacted.make(process.env.DATABASE_URL!),
          maxConnections: 1,
          connectTimeout: "300 millis",
        })
        const busy = yield* Effect.scoped(
          Effect.gen(function* () {
            const sql = yield* SqlClient.SqlClient
            yield* sql.reserve
            return yield* failureOf(sql`SELECT 1`)
          }),
        ).pipe(Effect.provide(oneConnection))
        // Nothing reached the server: a checkout that failed, because the pool stayed busy.
        expect(isCheckoutFailure(busy)).toBe(true)
        expect(isPoolExhausted(busy)).toBe(true)
        expect(isCheckoutFailure(new Error("Failed to acquire connection"))).toBe(false)
      }),
  )
})
