/** The miners routes as data: paths, Schemas and problems. Server and OpenAPI are derived from it. */
import { HttpApiEndpoint, HttpApiGroup, HttpApiSchema, OpenApi } from "@effect/platform"
import { Schema } from "effect"
import { Authentication } from "../../http/authentication.ts"
import { IdempotencyInFlight, IdempotencyKeyReused, NotFound, UnknownModel } from "../../http/problem.ts"
import { AddMiner, ListMinersParams, Miner, MinerId, MinerList } from "./schema.ts"

const IdempotencyHeaders = Schema.Struct({
  "idempotency-key": Schema.optional(
    Schema.String.annotations({
      description:
        "Makes the write safe to retry for 24 h: the same key and request replay the stored response (header `Idempotent-Replayed: true`).",
    }),
  ),
})

export class MinersGroup extends HttpApiGroup.make("miners")
  .add(
    HttpApiEndpoint.post("addMiner", "/api/miners")
      .setPayload(AddMiner)
      .setHeaders(IdempotencyHeaders)
      .addSuccess(Miner, { status: 201 })
      .addError(UnknownModel)
      .addError(IdempotencyKeyReused)
      .addError(IdempotencyInFlight)
      .annotate(OpenApi.Summary, "Add a user's miner holding (appends MinerAdded)"),
  )
  .add(
    HttpApiEndpoint.get("listMiners", "/api/miners")
      .setUrlParams(ListMinersParams)
      .addSuccess(MinerList)
      .annotate(OpenApi.Summary, "The tenant's miner holdings, optionally of one user"),
  )
  .add(
    HttpApiEndpoint.get("getMiner")`/api/miners/${HttpApiSchema.param("id", MinerId)}`
      .addSuccess(Miner)
      .addError(NotFound)
      .annotate(OpenApi.Summary, "One holding of the tenant"),
  )
  .middleware(Authentication) {}
