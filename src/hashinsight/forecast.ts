/**
 * Forecasts as pure functions: the power price at which mining stops paying, and revenue over a
 * horizon while difficulty keeps growing (each day's difficulty is the previous day's × (1 + g)).
 * The BTC price is held constant: the forecast isolates the difficulty trend.
 */
import { dailyRevenueUsd, type NetworkConditions, dailyRevenueBtc as revenueBtcPerDay } from "./economics.ts"

/** ≈ 73 % a year, close to Bitcoin's difficulty growth over recent years. */
export const DEFAULT_DIFFICULTY_GROWTH_PER_DAY = 0.0015
export const DEFAULT_HORIZON_DAYS = 30

/** USD/kWh at which a day's revenue equals the day's power cost; 0 when there is no power draw. */
export const breakevenPowerPriceUsdPerKwh = (
  hashrateThs: number,
  powerW: number,
  n: NetworkConditions,
): number => (powerW > 0 ? dailyRevenueUsd(hashrateThs, n) / ((powerW / 1000) * 24) : 0)

/**
 * Σ over days d = 0..days-1 of revenue₀ / (1 + g)^d — revenue scales with 1/difficulty. Closed
 * form of the geometric series; g = 0 is `days × revenue₀`.
 */
export const revenueUnderDifficultyTrend = (
  firstDayRevenue: number,
  growthPerDay: number,
  days: number,
): number => {
  if (growthPerDay === 0) return firstDayRevenue * days
  const r = 1 / (1 + growthPerDay)
  return (firstDayRevenue * (1 - r ** days)) / (1 - r)
}

export interface Trend {
  readonly difficultyGrowthPerDay: number
  readonly horizonDays: number
}

export const defaultTrend: Trend = {
  difficultyGrowthPerDay: DEFAULT_DIFFICULTY_GROWTH_PER_DAY,
  horizonDays: DEFAULT_HORIZON_DAYS,
}

export interface Forecast {
  readonly breakevenPowerUsdPerKwh: number
  readonly revenueBtc: number
  readonly revenueUsd: number
  /** Known only with a power price: a portfolio's holdings carry theirs, a bare model has none. */
  readonly powerCostUsd: number | null
  readonly profitUsd: number | null
}

export const forecast = (
  machine: { readonly hashrateThs: number; readonly powerW: number; readonly dailyPowerCostUsd?: number },
  n: NetworkConditions,
  trend: Trend = defaultTrend,
): Forecast => {
  const revenueBtc = revenueUnderDifficultyTrend(
    revenueBtcPerDay(machine.hashrateThs, n),
    trend.difficultyGrowthPerDay,
    trend.horizonDays,
  )
  const revenueUsd = revenueBtc * n.btcPriceUsd
  const powerCostUsd =
    machine.dailyPowerCostUsd === undefined ? null : machine.dailyPowerCostUsd * trend.horizonDays
  return {
    breakevenPowerUsdPerKwh: breakevenPowerPriceUsdPerKwh(machine.hashrateThs, machine.powerW, n),
    revenueBtc,
    revenueUsd,
    powerCostUsd,
    profitUsd: powerCostUsd === null ? null : revenueUsd - powerCostUsd,
  }
}
