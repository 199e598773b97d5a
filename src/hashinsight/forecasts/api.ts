/** Forecasts under the tenant's latest market data: a user's portfolio and every SHA-256 model. */
import { HttpApiEndpoint, HttpApiGroup, OpenApi } from "@effect/platform"
import { Schema } from "effect"
import { Authentication } from "../../http/authentication.ts"
import { UserId } from "../miners/schema.ts"
import { NotFoundProblem } from "../problems.ts"

const figures = {
  breakevenPowerUsdPerKwh: Schema.Number.annotations({
    description: "Power price at which a day's revenue equals its power cost",
  }),
  difficultyGrowthPerDay: Schema.Number,
  horizonDays: Schema.Int,
  revenueBtc: Schema.Number.annotations({ description: "Revenue over the horizon" }),
  revenueUsd: Schema.Number,
  powerCostUsd: Schema.NullOr(Schema.Number).annotations({ description: "null for a bare model" }),
  profitUsd: Schema.NullOr(Schema.Number),
  computedAt: Schema.Date,
}

export const PortfolioForecast = Schema.Struct(figures).annotations({ identifier: "PortfolioForecast" })
export const ModelForecast = Schema.Struct({ modelId: Schema.String, ...figures }).annotations({
  identifier: "ModelForecast",
})

export const Forecasts = Schema.Struct({
  userId: Schema.String,
  portfolio: Schema.NullOr(PortfolioForecast).annotations({
    description: "null while the user has no forecast yet",
  }),
  models: Schema.Array(ModelForecast),
}).annotations({ identifier: "Forecasts" })
export type Forecasts = typeof Forecasts.Type

export class ForecastsGroup extends HttpApiGroup.make("forecasts")
  .add(
    HttpApiEndpoint.get("getForecasts", "/api/forecasts")
      .setUrlParams(Schema.Struct({ userId: UserId }))
      .addSuccess(Forecasts)
      .addError(NotFoundProblem)
      .annotate(
        OpenApi.Summary,
        "Forecasts of a user's portfolio and of every model (404 until the tenant has market data)",
      ),
  )
  .middleware(Authentication) {}
