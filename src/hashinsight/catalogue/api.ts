/** The miner model catalogue routes: read-only, the same for every tenant. */
import { HttpApiEndpoint, HttpApiGroup, HttpApiSchema, OpenApi } from "@effect/platform"
import { Schema } from "effect"
import { Authentication } from "../../http/authentication.ts"
import { ModelId } from "../miners/schema.ts"
import { NotFoundProblem } from "../problems.ts"

export const MinerModelView = Schema.Struct({
  id: Schema.String,
  vendor: Schema.String,
  model: Schema.String,
  algorithm: Schema.String,
  hashrateThs: Schema.Number,
  powerW: Schema.Number,
  efficiencyJPerTh: Schema.Number,
  releaseYear: Schema.Int,
}).annotations({ identifier: "MinerModel" })

export const MinerModelList = Schema.Array(MinerModelView)

export class CatalogueGroup extends HttpApiGroup.make("catalogue")
  .add(
    HttpApiEndpoint.get("listMinerModels", "/api/miner-models")
      .addSuccess(MinerModelList)
      .annotate(OpenApi.Summary, "Every ASIC model of the catalogue with nameplate specs"),
  )
  .add(
    HttpApiEndpoint.get("getMinerModel")`/api/miner-models/${HttpApiSchema.param("id", ModelId)}`
      .addSuccess(MinerModelView)
      .addError(NotFoundProblem)
      .annotate(OpenApi.Summary, "One catalogue model"),
  )
  .middleware(Authentication) {}
