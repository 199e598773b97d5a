/**
 * What every HashInsight route does the same way: a write runs under the request's Idempotency-Key
 * in the tenant's RLS transaction and answers JSON of its response Schema; a read goes through the
 * SWR cache as the Schema's JSON-safe encoded form; a database that fails a read is a 503.
 */
import { Effect, Schema } from "effect"
import { Cache, type SwrOptions } from "../engine/cache/swr.ts"
import { CurrentTenant } from "../http/authentication.ts"
import { idempotentWrite, jsonResponse } from "../http/idempotency.ts"
import { databaseUnavailable } from "../http/problem.ts"

/** A database read that failed: 503 (see `databaseUnavailable`). */
export const databaseDown = databaseUnavailable("database")

/**
 * Runs `write(tenantId)` as the current tenant's idempotent write and answers `status` with its
 * result encoded by `schema`. Register the handler `{ uninterruptible: true }`: a write that
 * started finishes and records its response.
 */
export const tenantWrite = <A, I, E, R>(
  status: number,
  schema: Schema.Schema<A, I>,
  write: (tenantId: string) => Effect.Effect<A, E, R>,
) =>
  Effect.gen(function* () {
    const tenant = yield* CurrentTenant
    return yield* idempotentWrite(
      tenant.id,
      write(tenant.id).pipe(
        Effect.flatMap(encodeOrDie(schema)),
        Effect.map((body) => jsonResponse(status, body)),
      ),
    )
  })

/**
 * `load` through the SWR cache under `key`. What is cached is `schema`'s encoded form (JSON-safe:
 * dates as strings); a cached value that no longer decodes (its shape changed) is dropped and
 * loaded again rather than failing the read.
 */
export const cachedRead = <A, I, E, R>(
  key: string,
  policy: SwrOptions,
  schema: Schema.Schema<A, I>,
  load: Effect.Effect<A, E, R>,
) =>
  Effect.gen(function* () {
    const cache = yield* Cache
    const encoded = yield* cache.get(key, Effect.flatMap(load, encodeOrDie(schema)), policy)
    return yield* Schema.decodeUnknown(schema)(encoded).pipe(
      Effect.catchTag("ParseError", (e) =>
        Effect.logWarning(`cached ${key} no longer decodes; reloading`, e).pipe(
          Effect.zipRight(Effect.ignore(cache.invalidate(key))),
          Effect.zipRight(load),
        ),
      ),
    )
  })

const encodeOrDie =
  <A, I>(schema: Schema.Schema<A, I>) =>
  (a: A) =>
    Effect.orDie(Schema.encode(schema)(a))
