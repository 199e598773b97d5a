import { describe, expect, test } from "bun:test"
import {
  breakevenPowerPriceUsdPerKwh,
  forecast,
  revenueUnderDifficultyTrend,
} from "../../src/hashinsight/forecast.ts"

// Hand-computed (30-digit decimal arithmetic): an S21 (200 TH/s, 3500 W) earns 7.785111665725708
// USD/day at difficulty 1e14, 60,000 USD/BTC, 3.125 + 0.1 BTC per block.
const network = { btcPriceUsd: 60_000, difficulty: 1e14, blockRewardBtc: 3.125, feesBtcPerBlock: 0.1 }
const s21Day1Btc = 1.2975186109542847e-4

describe("breakeven power price", () => {
  test.each([
    ["Antminer S21: 7.78511 USD / 84 kWh", 200, 3500, network, 0.0926799007824489],
    ["Whatsminer M60S: 7.24015 USD / 82.584 kWh", 186, 3441, network, 0.08767017641583005],
    [
      "half the price, half the breakeven",
      200,
      3500,
      { ...network, btcPriceUsd: 30_000 },
      0.04633995039122445,
    ],
    ["no power draw: defined as 0", 200, 0, network, 0],
  ] as const)("%s", (_, ths, watts, n, expected) => {
    expect(breakevenPowerPriceUsdPerKwh(ths, watts, n)).toBeCloseTo(expected, 12)
  })
})

describe("revenue under a difficulty trend", () => {
  test.each([
    ["flat difficulty: 30 equal days", 1, 0, 30, 30],
    ["1 %/day over 3 days: 1 + 1/1.01 + 1/1.01²", s21Day1Btc, 0.01, 3, 3.854142871338671e-4],
    ["0.15 %/day over 30 days", s21Day1Btc, 0.0015, 30, 3.8091894286319656e-3],
    ["one day is the first day", 5, 0.5, 1, 5],
    ["no days, no revenue", 5, 0.01, 0, 0],
  ] as const)("%s", (_, first, growth, days, expected) => {
    expect(revenueUnderDifficultyTrend(first, growth, days)).toBeCloseTo(expected, 15)
  })

  test("falling difficulty (negative growth) earns more than flat", () => {
    expect(revenueUnderDifficultyTrend(1, -0.01, 30)).toBeGreaterThan(30)
  })
})

describe("forecast", () => {
  test("a model alone: revenue and breakeven, no cost without a power price", () => {
    const f = forecast({ hashrateThs: 200, powerW: 3500 }, network)
    expect(f.revenueBtc).toBeCloseTo(3.8091894286319656e-3, 15)
    expect(f.revenueUsd).toBeCloseTo(228.5513657179179, 9)
    expect(f.breakevenPowerUsdPerKwh).toBeCloseTo(0.0926799007824489, 12)
    expect(f.powerCostUsd).toBeNull()
    expect(f.profitUsd).toBeNull()
  })

  test("with a daily power cost: 30 days of cost and the profit after it", () => {
    const f = forecast({ hashrateThs: 200, powerW: 3500, dailyPowerCostUsd: 4.2 }, network, {
      difficultyGrowthPerDay: 0,
      horizonDays: 30,
    })
    expect(f.revenueUsd).toBeCloseTo(233.5533499717712, 9) // 30 × 7.78511…
    expect(f.powerCostUsd).toBeCloseTo(126, 10)
    expect(f.profitUsd).toBeCloseTo(107.5533499717712, 9)
  })
})
