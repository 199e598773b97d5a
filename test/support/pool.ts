/**
 * The production database layer (`Db.layerConfig`: our pool, socket and client) on the suite's
 * database (or `url`) with `max` connections, made fresh for each use: with one connection the next borrower is
 * the same connection unless the pool dropped it.
 */
import type { SqlClient } from "@effect/sql"
import { Effect, Layer, Redacted } from "effect"
import { AppConfig } from "../../src/platform/config.ts"
import { Db } from "../../src/platform/db.ts"

export const poolOf = (max: number, url = process.env.DATABASE_URL!) =>
  Layer.unwrapEffect(
    Effect.map(AppConfig, (config) =>
      Db.layerConfig.pipe(
        Layer.provide(
          Layer.succeed(AppConfig, {
            ...config,
            dbPoolMax: max,
            databaseUrl: Redacted.make(url),
          }),
        ),
      ),
    ),
  ).pipe(Layer.provide(AppConfig.layer), Layer.fresh)

/** `self` on a pool of `max` connections (one unless told) of its own. */
export const inPool = <A, E>(self: Effect.Effect<A, E, SqlClient.SqlClient>, max = 1) =>
  Effect.provide(self, poolOf(max)).pipe(Effect.orDie)
