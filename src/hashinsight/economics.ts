/**
 * Mining economics as pure functions over plain numbers: what a hashrate earns per day at given
 * network conditions, what its power costs, and what a portfolio of holdings adds up to.
 * BTC revenue applies to SHA-256 hashrate only; other algorithms mine other coins.
 */

export const SECONDS_PER_DAY = 86_400
const HASHES_PER_TH = 1e12
/** Expected hashes per block at difficulty 1. */
const HASHES_PER_DIFFICULTY = 2 ** 32

export const BITCOIN_ALGORITHM = "SHA-256"

export interface NetworkConditions {
  readonly btcPriceUsd: number
  readonly difficulty: number
  readonly blockRewardBtc: number
  readonly feesBtcPerBlock: number
}

/** Expected BTC per day for 1 TH/s: blocks found per day × BTC per block. */
export const btcPerThPerDay = (n: NetworkConditions): number =>
  (SECONDS_PER_DAY * (n.blockRewardBtc + n.feesBtcPerBlock) * HASHES_PER_TH) /
  (n.difficulty * HASHES_PER_DIFFICULTY)

export const dailyRevenueBtc = (hashrateThs: number, n: NetworkConditions): number =>
  hashrateThs * btcPerThPerDay(n)

export const dailyRevenueUsd = (hashrateThs: number, n: NetworkConditions): number =>
  dailyRevenueBtc(hashrateThs, n) * n.btcPriceUsd

/** Energy cost of running `powerW` for a day: kW × 24 h × USD/kWh. */
export const dailyPowerCostUsd = (powerW: number, usdPerKwh: number): number =>
  (powerW / 1000) * 24 * usdPerKwh

/** A user's holding of `count` units of one catalogue model. */
export interface Holding {
  readonly count: number
  readonly hashrateThs: number
  readonly powerW: number
  readonly algorithm: string
  readonly powerPriceUsdPerKwh: number
}

/** What a portfolio's machines are, independent of market conditions. */
export interface Capacity {
  readonly minerCount: number
  /** Units of non-SHA-256 models: not in hashrate, power or cost, since BTC revenue can't price them. */
  readonly unpricedMinerCount: number
  readonly totalHashrateThs: number
  readonly totalPowerW: number
  readonly dailyPowerCostUsd: number
}

export const capacityOf = (holdings: ReadonlyArray<Holding>): Capacity => {
  let minerCount = 0
  let unpricedMinerCount = 0
  let totalHashrateThs = 0
  let totalPowerW = 0
  let powerCostUsd = 0
  for (const h of holdings) {
    if (h.algorithm !== BITCOIN_ALGORITHM) {
      unpricedMinerCount += h.count
      continue
    }
    minerCount += h.count
    totalHashrateThs += h.count * h.hashrateThs
    totalPowerW += h.count * h.powerW
    powerCostUsd += dailyPowerCostUsd(h.count * h.powerW, h.powerPriceUsdPerKwh)
  }
  return { minerCount, unpricedMinerCount, totalHashrateThs, totalPowerW, dailyPowerCostUsd: powerCostUsd }
}

export interface Earnings {
  readonly dailyRevenueBtc: number
  readonly dailyRevenueUsd: number
  readonly dailyProfitUsd: number
  readonly treasuryUsd: number
}

export const earningsOf = (capacity: Capacity, treasuryBtc: number, n: NetworkConditions): Earnings => {
  const revenueBtc = dailyRevenueBtc(capacity.totalHashrateThs, n)
  const revenueUsd = revenueBtc * n.btcPriceUsd
  return {
    dailyRevenueBtc: revenueBtc,
    dailyRevenueUsd: revenueUsd,
    dailyProfitUsd: revenueUsd - capacity.dailyPowerCostUsd,
    treasuryUsd: treasuryBtc * n.btcPriceUsd,
  }
}
