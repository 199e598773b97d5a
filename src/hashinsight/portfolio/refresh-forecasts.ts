/**
 * `refreshForecasts`: under the tenant's latest market data, recomputes the forecast of every
 * SHA-256 catalogue model and of one user's portfolio (or every user's) and upserts `forecasts`;
 * `refreshUserForecasts` recomputes only some users' portfolio forecasts.
 * Without market data there is nothing to forecast and nothing is written.
 */
import { SqlClient } from "@effect/sql"
import { Effect, Option } from "effect"
import { withTenant } from "../../platform/db.ts"
import { listMinerModels } from "../catalogue.ts"
import { BITCOIN_ALGORITHM, capacityOf } from "../economics.ts"
import { defaultTrend, type Forecast, forecast, type Trend } from "../forecast.ts"
import { latestMarketData } from "../ops/market-data.ts"
import { activeHoldings, groupByUser } from "./holdings.ts"

export interface ForecastRefresh {
  readonly models: number
  readonly portfolios: number
}

interface Scope {
  /** Refresh every model's forecast too (they depend on the market data only). */
  readonly models: boolean
  /** These users' portfolio forecasts; undefined = every user of the tenant. */
  readonly users: ReadonlyArray<string> | undefined
}

const refresh = (tenantId: string, scope: Scope, trend: Trend) =>
  withTenant(tenantId)(
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const market = yield* latestMarketData
      if (Option.isNone(market)) return { models: 0, portfolios: 0 } satisfies ForecastRefresh
      const n = market.value
      const row = (subjectKind: "model" | "portfolio", subjectId: string, f: Forecast) => ({
        tenant_id: tenantId,
        subject_kind: subjectKind,
        subject_id: subjectId,
        breakeven_power_usd_per_kwh: f.breakevenPowerUsdPerKwh,
        difficulty_growth_per_day: trend.difficultyGrowthPerDay,
        horizon_days: trend.horizonDays,
        revenue_btc: f.revenueBtc,
        revenue_usd: f.revenueUsd,
        power_cost_usd: f.powerCostUsd,
        profit_usd: f.profitUsd,
      })
      const models = scope.models
        ? (yield* listMinerModels).filter((m) => m.algorithm === BITCOIN_ALGORITHM)
        : []
      const byUser = groupByUser(yield* activeHoldings(scope.users))
      // A named user with no active holdings still gets a (zero) forecast, replacing a stale one.
      for (const user of scope.users ?? []) if (!byUser.has(user)) byUser.set(user, [])
      const rows = [
        ...models.map((m) => row("model", m.id, forecast(m, n, trend))),
        ...Array.from(byUser, ([user, holdings]) => {
          const c = capacityOf(holdings)
          const f = forecast(
            {
              hashrateThs: c.totalHashrateThs,
              powerW: c.totalPowerW,
              dailyPowerCostUsd: c.dailyPowerCostUsd,
            },
            n,
            trend,
          )
          return row("portfolio", user, f)
        }),
      ]
      // Key order, so two refreshes of one tenant lock their rows in the same order.
      const keyOf = (r: (typeof rows)[number]) => `${r.subject_kind}:${r.subject_id}`
      rows.sort((a, b) => (keyOf(a) < keyOf(b) ? -1 : keyOf(a) > keyOf(b) ? 1 : 0))
      if (scope.users === undefined) {
        // Users whose holdings are all gone keep no forecast.
        yield* sql`DELETE FROM forecasts WHERE subject_kind = 'portfolio'
                   AND NOT (subject_id = ANY(${Array.from(byUser.keys())}))`
      }
      if (rows.length > 0) {
        yield* sql`
          INSERT INTO forecasts ${sql.insert(rows)}
          ON CONFLICT (tenant_id, subject_kind, subject_id) DO UPDATE SET
            breakeven_power_usd_per_kwh = EXCLUDED.breakeven_power_usd_per_kwh,
            difficulty_growth_per_day = EXCLUDED.difficulty_growth_per_day,
            horizon_days = EXCLUDED.horizon_days,
            revenue_btc = EXCLUDED.revenue_btc,
            revenue_usd = EXCLUDED.revenue_usd,
            power_cost_usd = EXCLUDED.power_cost_usd,
            profit_usd = EXCLUDED.profit_usd,
            computed_at = now()`
      }
      return { models: models.length, portfolios: byUser.size } satisfies ForecastRefresh
    }),
  )

/** Every model's forecast and one user's portfolio forecast (or every user's). */
export const refreshForecasts = Effect.fn("Forecast.refresh")(function* (
  tenantId: string,
  userId?: string,
  trend: Trend = defaultTrend,
) {
  return yield* refresh(tenantId, { models: true, users: userId === undefined ? undefined : [userId] }, trend)
})

/**
 * Only these users' portfolio forecasts: what a change of their holdings affects. The model
 * forecasts depend on the market data alone and are refreshed when it changes.
 */
export const refreshUserForecasts = Effect.fn("Forecast.refreshUsers")(function* (
  tenantId: string,
  userIds: ReadonlyArray<string>,
  trend: Trend = defaultTrend,
) {
  if (userIds.length === 0) return { models: 0, portfolios: 0 } satisfies ForecastRefresh
  return yield* refresh(tenantId, { models: false, users: [...new Set(userIds)] }, trend)
})
