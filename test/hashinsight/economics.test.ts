import { describe, expect, test } from "bun:test"
import {
  btcPerThPerDay,
  capacityOf,
  dailyPowerCostUsd,
  dailyRevenueBtc,
  dailyRevenueUsd,
  earningsOf,
  type Holding,
} from "../../src/hashinsight/economics.ts"

// Expected values below were computed by hand (30-digit decimal arithmetic), not by this code:
// per TH/s = 86400 × (3.125 + 0.1) × 1e12 / (1e14 × 2^32) = 2.7864e17 / 4.294967296e23.
const network = { btcPriceUsd: 60_000, difficulty: 1e14, blockRewardBtc: 3.125, feesBtcPerBlock: 0.1 }
const s21 = { hashrateThs: 200, powerW: 3500, algorithm: "SHA-256" }
const m60s = { hashrateThs: 186, powerW: 3441, algorithm: "SHA-256" }
const l7 = { hashrateThs: 0.0095, powerW: 3425, algorithm: "Scrypt" }

describe("daily revenue and cost", () => {
  test.each([
    ["BTC per TH/s per day", () => btcPerThPerDay(network), 6.487593054771424e-7],
    ["Antminer S21 BTC per day", () => dailyRevenueBtc(200, network), 1.2975186109542847e-4],
    ["Antminer S21 USD per day", () => dailyRevenueUsd(200, network), 7.785111665725708],
    ["Whatsminer M60S USD per day", () => dailyRevenueUsd(186, network), 7.240153849124908],
    ["S21 power cost at 0.05 USD/kWh: 3.5 kW × 24 h × 0.05", () => dailyPowerCostUsd(3500, 0.05), 4.2],
    ["M60S power cost at 0.07 USD/kWh", () => dailyPowerCostUsd(3441, 0.07), 5.78088],
    [
      "twice the difficulty halves revenue",
      () => dailyRevenueUsd(200, { ...network, difficulty: 2e14 }),
      3.892555832862854,
    ],
    [
      "no fees: reward only",
      () => dailyRevenueBtc(200, { ...network, feesBtcPerBlock: 0 }),
      1.257285475730896e-4,
    ],
  ] as const)("%s", (_, actual, expected) => {
    expect(actual()).toBeCloseTo(expected, 12)
  })
})

describe("portfolio figures", () => {
  const holdings: ReadonlyArray<Holding> = [
    { ...s21, count: 2, powerPriceUsdPerKwh: 0.05 },
    { ...m60s, count: 3, powerPriceUsdPerKwh: 0.07 },
    { ...l7, count: 1, powerPriceUsdPerKwh: 0.05 },
  ]

  test("capacity sums SHA-256 holdings and counts the others as unpriced", () => {
    const c = capacityOf(holdings)
    expect(c.minerCount).toBe(5)
    expect(c.unpricedMinerCount).toBe(1)
    expect(c.totalHashrateThs).toBe(958) // 2 × 200 + 3 × 186
    expect(c.totalPowerW).toBe(17_323) // 2 × 3500 + 3 × 3441
    expect(c.dailyPowerCostUsd).toBeCloseTo(25.74264, 10) // 2 × 4.2 + 3 × 5.78088
  })

  test("earnings: revenue, profit after power, treasury value", () => {
    const e = earningsOf(capacityOf(holdings), 0.5, network)
    expect(e.dailyRevenueUsd).toBeCloseTo(37.29068487882617, 10) // 2 × 7.78511… + 3 × 7.24015…
    expect(e.dailyRevenueBtc).toBeCloseTo(6.2151141464709e-4, 14)
    expect(e.dailyProfitUsd).toBeCloseTo(11.54804487882617, 10)
    expect(e.treasuryUsd).toBe(30_000)
  })

  test("an empty portfolio earns and costs nothing", () => {
    const c = capacityOf([])
    expect(c).toEqual({
      minerCount: 0,
      unpricedMinerCount: 0,
      totalHashrateThs: 0,
      totalPowerW: 0,
      dailyPowerCostUsd: 0,
    })
    expect(earningsOf(c, 0, network)).toEqual({
      dailyRevenueBtc: 0,
      dailyRevenueUsd: 0,
      dailyProfitUsd: 0,
      treasuryUsd: 0,
    })
  })
})
