/** The miners routes' handlers: every database touch runs in the caller's tenant transaction. */
import { HttpApiBuilder } from "@effect/platform"
import { Effect, Layer, Option } from "effect"
import { CurrentTenant } from "../../http/authentication.ts"
import { withTenant } from "../../platform/db.ts"
import { HashInsightApi } from "../api.ts"
import { NotFound } from "../errors.ts"
import { databaseDown, tenantWrite } from "../route-kit.ts"
import { Miners } from "./miners.ts"
import { Miner } from "./schema.ts"

export const MinersRoutes = HttpApiBuilder.group(HashInsightApi, "miners", (handlers) =>
  Effect.gen(function* () {
    const miners = yield* Miners
    return handlers
      .handle(
        "addMiner",
        ({ payload }) => tenantWrite(201, Miner, (tenantId) => miners.add(tenantId, payload)),
        {
          uninterruptible: true,
        },
      )
      .handle(
        "changeMiner",
        ({ path, payload }) =>
          tenantWrite(200, Miner, (tenantId) => miners.change(tenantId, path.id, payload)),
        { uninterruptible: true },
      )
      .handle(
        "retireMiner",
        ({ path }) => tenantWrite(200, Miner, (tenantId) => miners.retire(tenantId, path.id)),
        { uninterruptible: true },
      )
      .handle("listMiners", ({ urlParams }) =>
        Effect.flatMap(CurrentTenant, (tenant) =>
          withTenant(tenant.id)(miners.list(urlParams.userId)).pipe(
            Effect.catchTag("SqlError", databaseDown),
          ),
        ),
      )
      .handle("getMiner", ({ path }) =>
        Effect.gen(function* () {
          const tenant = yield* CurrentTenant
          const found = yield* withTenant(tenant.id)(miners.get(path.id)).pipe(
            Effect.catchTag("SqlError", databaseDown),
          )
          return yield* Option.match(found, {
            onNone: () => Effect.fail(new NotFound({ message: `no miner ${path.id}` })),
            onSome: Effect.succeed,
          })
        }),
      )
  }),
).pipe(Layer.provide(Miners.layer))
