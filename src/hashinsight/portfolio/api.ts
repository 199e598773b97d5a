/** A user's portfolio figures as the portfolio consumer last computed them. */
import { HttpApiEndpoint, HttpApiGroup, HttpApiSchema, OpenApi } from "@effect/platform"
import { Schema } from "effect"
import { Authentication } from "../../http/authentication.ts"
import { UserId } from "../miners/schema.ts"
import { NotFoundProblem } from "../problems.ts"

const Figure = Schema.NullOr(Schema.Number)

export const PortfolioView = Schema.Struct({
  userId: Schema.String,
  minerCount: Schema.Int,
  unpricedMinerCount: Schema.Int.annotations({
    description: "Holdings of other algorithms than SHA-256, left out of the figures",
  }),
  totalHashrateThs: Schema.Number,
  totalPowerW: Schema.Number,
  dailyPowerCostUsd: Schema.Number,
  treasuryBtc: Schema.Number,
  dailyRevenueBtc: Figure.annotations({ description: "null until the tenant has market data" }),
  dailyRevenueUsd: Figure,
  dailyProfitUsd: Figure,
  treasuryUsd: Figure,
  btcPriceUsd: Figure,
  difficulty: Figure,
  computedAt: Schema.Date,
}).annotations({ identifier: "Portfolio" })

export class PortfolioGroup extends HttpApiGroup.make("portfolio")
  .add(
    HttpApiEndpoint.get("getPortfolio")`/api/portfolio/${HttpApiSchema.param("userId", UserId)}`
      .addSuccess(PortfolioView)
      .addError(NotFoundProblem)
      .annotate(
        OpenApi.Summary,
        "A user's portfolio as last recalculated (cached: up to 5 s old, then refreshed in the background)",
      ),
  )
  .middleware(Authentication) {}
