/** The stored portfolio of one user, as last recalculated; run it under `withTenant`. */
import { SqlClient, SqlSchema } from "@effect/sql"
import { Effect, Schema } from "effect"
import { NullableNumeric, Numeric } from "../sql-numeric.ts"

export const Portfolio = Schema.Struct({
  userId: Schema.String,
  minerCount: Schema.Int,
  unpricedMinerCount: Schema.Int,
  totalHashrateThs: Numeric,
  totalPowerW: Numeric,
  dailyPowerCostUsd: Numeric,
  treasuryBtc: Numeric,
  dailyRevenueBtc: NullableNumeric,
  dailyRevenueUsd: NullableNumeric,
  dailyProfitUsd: NullableNumeric,
  treasuryUsd: NullableNumeric,
  btcPriceUsd: NullableNumeric,
  difficulty: NullableNumeric,
  computedAt: Schema.DateFromSelf,
  fenceToken: Numeric,
})
export type Portfolio = typeof Portfolio.Type

export const findPortfolio = Effect.fn("Portfolio.find")(function* (userId: string) {
  const sql = yield* SqlClient.SqlClient
  return yield* SqlSchema.findOne({
    Request: Schema.String,
    Result: Portfolio,
    execute: (user) => sql`
      SELECT user_id AS "userId", miner_count AS "minerCount", unpriced_miner_count AS "unpricedMinerCount",
             total_hashrate_ths AS "totalHashrateThs", total_power_w AS "totalPowerW",
             daily_power_cost_usd AS "dailyPowerCostUsd", treasury_btc AS "treasuryBtc",
             daily_revenue_btc AS "dailyRevenueBtc", daily_revenue_usd AS "dailyRevenueUsd",
             daily_profit_usd AS "dailyProfitUsd", treasury_usd AS "treasuryUsd",
             btc_price_usd AS "btcPriceUsd", difficulty, computed_at AS "computedAt",
             fence_token AS "fenceToken"
      FROM portfolios WHERE user_id = ${user}`,
  })(userId)
})
