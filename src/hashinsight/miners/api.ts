/** The miners routes as data: paths, Schemas and problems. Server and OpenAPI are derived from it. */
import { HttpApiEndpoint, HttpApiGroup, HttpApiSchema, OpenApi } from "@effect/platform"
import { Authentication } from "../../http/authentication.ts"
import { withIdempotencyKey } from "../../http/idempotency.ts"
import { ConflictProblem, NotFoundProblem, UnknownModelProblem } from "../problems.ts"
import { AddMiner, ChangeMiner, ListMinersParams, Miner, MinerId, MinerList } from "./schema.ts"

export class MinersGroup extends HttpApiGroup.make("miners")
  .add(
    HttpApiEndpoint.post("addMiner", "/api/miners")
      .setPayload(AddMiner)
      .addSuccess(Miner, { status: 201 })
      .addError(UnknownModelProblem)
      .pipe(withIdempotencyKey)
      .annotate(OpenApi.Summary, "Add a user's miner holding (appends MinerAdded)"),
  )
  .add(
    HttpApiEndpoint.patch("changeMiner")`/api/miners/${HttpApiSchema.param("id", MinerId)}`
      .setPayload(ChangeMiner)
      .addSuccess(Miner)
      .addError(NotFoundProblem)
      .addError(ConflictProblem)
      .pipe(withIdempotencyKey)
      .annotate(
        OpenApi.Summary,
        "Change an active holding's count, site or power price (appends MinerChanged)",
      ),
  )
  .add(
    HttpApiEndpoint.post("retireMiner")`/api/miners/${HttpApiSchema.param("id", MinerId)}/retire`
      .addSuccess(Miner)
      .addError(NotFoundProblem)
      .addError(ConflictProblem)
      .pipe(withIdempotencyKey)
      .annotate(OpenApi.Summary, "Retire an active holding (appends MinerRetired)"),
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
      .addError(NotFoundProblem)
      .annotate(OpenApi.Summary, "One holding of the tenant"),
  )
  .middleware(Authentication) {}
