/** The miners routes' handlers: every database touch runs in the caller's tenant transaction. */
import { HttpApiBuilder } from "@effect/platform"
import { Effect, Layer, Option, Schema } from "effect"
import { HashInsightApi } from "../../http/api.ts"
import { CurrentTenant } from "../../http/authentication.ts"
import { idempotentWrite, jsonResponse } from "../../http/idempotency.ts"
import { NotFound, ServiceUnavailable } from "../../http/problem.ts"
import { withTenant } from "../../platform/db.ts"
import { Miners } from "./miners.ts"
import { Miner } from "./schema.ts"

const encodeMiner = Schema.encode(Miner)

const databaseDown = () => new ServiceUnavailable({ detail: "the database is unavailable" })

export const MinersLive = HttpApiBuilder.group(HashInsightApi, "miners", (handlers) =>
  Effect.gen(function* () {
    const miners = yield* Miners
    return handlers
      .handle(
        "addMiner",
        ({ payload }) =>
          Effect.gen(function* () {
            const tenant = yield* CurrentTenant
            return yield* idempotentWrite(
              tenant.id,
              miners.add(tenant.id, payload).pipe(
                Effect.flatMap(encodeMiner),
                Effect.map((body) => jsonResponse(201, body)),
                Effect.catchTag("ParseError", Effect.die),
              ),
            )
          }),
        { uninterruptible: true },
      )
      .handle("listMiners", ({ urlParams }) =>
        Effect.flatMap(CurrentTenant, (tenant) =>
          withTenant(tenant.id)(miners.list(urlParams.userId)).pipe(Effect.mapError(databaseDown)),
        ),
      )
      .handle("getMiner", ({ path }) =>
        Effect.gen(function* () {
          const tenant = yield* CurrentTenant
          const found = yield* withTenant(tenant.id)(miners.get(path.id)).pipe(Effect.mapError(databaseDown))
          return yield* Option.match(found, {
            onNone: () => Effect.fail(new NotFound({ detail: `no miner ${path.id}` })),
            onSome: Effect.succeed,
          })
        }),
      )
  }),
).pipe(Layer.provide(Miners.layer))
