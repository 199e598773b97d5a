/** Stored forecasts of one user's portfolio and of every model, under the caller's `withTenant`. */
import { SqlClient, SqlSchema } from "@effect/sql"
import { Effect, Schema } from "effect"
import { NullableNumeric, Numeric } from "../sql-numeric.ts"

export const ForecastRow = Schema.Struct({
  subjectKind: Schema.Literal("model", "portfolio"),
  subjectId: Schema.String,
  breakevenPowerUsdPerKwh: Numeric,
  difficultyGrowthPerDay: Numeric,
  horizonDays: Schema.Int,
  revenueBtc: Numeric,
  revenueUsd: Numeric,
  powerCostUsd: NullableNumeric,
  profitUsd: NullableNumeric,
  computedAt: Schema.DateFromSelf,
})
export type ForecastRow = typeof ForecastRow.Type

export const findForecasts = Effect.fn("Forecast.find")(function* (userId: string) {
  const sql = yield* SqlClient.SqlClient
  return yield* SqlSchema.findAll({
    Request: Schema.String,
    Result: ForecastRow,
    execute: (user) => sql`
      SELECT subject_kind AS "subjectKind", subject_id AS "subjectId",
             breakeven_power_usd_per_kwh AS "breakevenPowerUsdPerKwh",
             difficulty_growth_per_day AS "difficultyGrowthPerDay", horizon_days AS "horizonDays",
             revenue_btc AS "revenueBtc", revenue_usd AS "revenueUsd", power_cost_usd AS "powerCostUsd",
             profit_usd AS "profitUsd", computed_at AS "computedAt"
      FROM forecasts
      WHERE subject_kind = 'model' OR (subject_kind = 'portfolio' AND subject_id = ${user})
      ORDER BY subject_kind, subject_id`,
  })(userId)
})
