import { describe, expect } from "bun:test"
import { SqlClient } from "@effect/sql"
import { Effect, Option } from "effect"
import { updateMarketData } from "../../src/hashinsight/ops/market-data.ts"
import { findPortfolio } from "../../src/hashinsight/portfolio/read.ts"
import { recalculatePortfolio, StaleFenceToken } from "../../src/hashinsight/portfolio/recalculate.ts"
import { refreshForecasts } from "../../src/hashinsight/portfolio/refresh-forecasts.ts"
import { recordTreasuryTransaction } from "../../src/hashinsight/treasury/record-transaction.ts"
import { withTenant } from "../../src/platform/db.ts"
import { effectTest } from "../support/effect.ts"
import { uniqueId } from "../support/ids.ts"

const network = { btcPriceUsd: 60_000, difficulty: 1e14, blockRewardBtc: 3.125, feesBtcPerBlock: 0.1 }

const addMiner = (
  tenantId: string,
  userId: string,
  modelId: string,
  count: number,
  price: number,
  status = "active",
) =>
  Effect.flatMap(
    SqlClient.SqlClient,
    (sql) =>
      sql`INSERT INTO miners ${sql.insert({
        id: crypto.randomUUID(),
        tenant_id: tenantId,
        user_id: userId,
        model_id: modelId,
        count,
        site: "texas-1",
        power_price_usd_per_kwh: price,
        status,
      })}`,
  )

/** 2 × S21 at 0.05 USD/kWh, 3 × M60S at 0.07, an L7 (Scrypt, unpriced), a retired S19 (ignored). */
const seedHoldings = (tenantId: string, userId: string) =>
  Effect.all([
    addMiner(tenantId, userId, "antminer-s21", 2, 0.05),
    addMiner(tenantId, userId, "whatsminer-m60s", 3, 0.07),
    addMiner(tenantId, userId, "antminer-l7", 1, 0.05),
    addMiner(tenantId, userId, "antminer-s19", 10, 0.05, "retired"),
  ])

const readPortfolio = (tenantId: string, userId: string) =>
  withTenant(tenantId)(findPortfolio(userId)).pipe(Effect.map(Option.getOrThrow))

describe("recalculatePortfolio", () => {
  effectTest("sums active SHA-256 holdings, prices them at the latest market data, adds treasury", () =>
    Effect.gen(function* () {
      const tenant = crypto.randomUUID()
      const user = uniqueId("user")
      yield* seedHoldings(tenant, user)
      // Same user id in another tenant: RLS keeps it out of this portfolio.
      yield* addMiner(crypto.randomUUID(), user, "antminer-s21-xp-hyd", 100, 0.01)
      yield* recordTreasuryTransaction(tenant, { userId: user, kind: "mining_payout", btc: 0.75 })
      yield* recordTreasuryTransaction(tenant, { userId: user, kind: "withdrawal", btc: 0.25 })
      yield* updateMarketData(tenant, {
        ...network,
        btcPriceUsd: 10_000,
        at: new Date("2024-01-01T00:00:00Z"),
      })
      yield* updateMarketData(tenant, { ...network, at: new Date("2025-01-01T00:00:00Z") })

      yield* recalculatePortfolio(tenant, user, 1)
      const p = yield* readPortfolio(tenant, user)
      // Hand-computed in economics.test.ts for the same holdings and network.
      expect(p).toMatchObject({
        userId: user,
        minerCount: 5,
        unpricedMinerCount: 1,
        totalHashrateThs: 958,
        totalPowerW: 17_323,
        treasuryBtc: 0.5,
        treasuryUsd: 30_000,
        btcPriceUsd: 60_000,
        difficulty: 1e14,
        fenceToken: 1,
      })
      expect(p.dailyPowerCostUsd).toBeCloseTo(25.74264, 10)
      expect(p.dailyRevenueUsd!).toBeCloseTo(37.29068487882617, 10)
      expect(p.dailyProfitUsd!).toBeCloseTo(11.54804487882617, 10)
    }),
  )

  effectTest("without market data: capacity and cost, revenue left unknown", () =>
    Effect.gen(function* () {
      const tenant = crypto.randomUUID()
      yield* seedHoldings(tenant, "u1")
      yield* recalculatePortfolio(tenant, "u1", 1)
      const p = yield* readPortfolio(tenant, "u1")
      expect(p).toMatchObject({
        totalHashrateThs: 958,
        treasuryBtc: 0,
        dailyRevenueBtc: null,
        dailyRevenueUsd: null,
        dailyProfitUsd: null,
        treasuryUsd: null,
      })
    }),
  )

  effectTest("a write with an older fencing token is rejected and leaves the newer result", () =>
    Effect.gen(function* () {
      const tenant = crypto.randomUUID()
      yield* updateMarketData(tenant, network)
      yield* addMiner(tenant, "u1", "antminer-s21", 1, 0.05)
      yield* recalculatePortfolio(tenant, "u1", 5)
      yield* addMiner(tenant, "u1", "antminer-s21", 1, 0.05)
      const stale = yield* Effect.flip(recalculatePortfolio(tenant, "u1", 4))
      expect(stale).toBeInstanceOf(StaleFenceToken)
      expect(yield* readPortfolio(tenant, "u1")).toMatchObject({ fenceToken: 5, minerCount: 1 })
      // The same holder may write again; a newer one supersedes it.
      yield* recalculatePortfolio(tenant, "u1", 5)
      expect(yield* readPortfolio(tenant, "u1")).toMatchObject({ fenceToken: 5, minerCount: 2 })
      yield* recalculatePortfolio(tenant, "u1", 6)
      expect(yield* readPortfolio(tenant, "u1")).toMatchObject({ fenceToken: 6, minerCount: 2 })
    }),
  )
})

describe("refreshForecasts", () => {
  const forecastsOf = (tenantId: string) =>
    Effect.flatMap(
      SqlClient.SqlClient,
      (sql) => sql<{
        subject_kind: string
        subject_id: string
        breakeven: string
        revenue_usd: string
        profit_usd: string | null
      }>`
        SELECT subject_kind, subject_id, breakeven_power_usd_per_kwh AS breakeven, revenue_usd, profit_usd
        FROM forecasts WHERE tenant_id = ${tenantId} ORDER BY subject_kind, subject_id`,
    )

  effectTest("forecasts every SHA-256 model and the user's portfolio at the latest market data", () =>
    Effect.gen(function* () {
      const tenant = crypto.randomUUID()
      expect(yield* refreshForecasts(tenant)).toEqual({ models: 0, portfolios: 0 })
      yield* updateMarketData(tenant, network)
      yield* seedHoldings(tenant, "u1")
      expect(yield* refreshForecasts(tenant, "u1")).toEqual({ models: 38, portfolios: 1 })
      const rows = yield* forecastsOf(tenant)
      const s21 = rows.find((r) => r.subject_id === "antminer-s21")!
      expect(Number(s21.breakeven)).toBeCloseTo(0.0926799007824489, 12)
      expect(Number(s21.revenue_usd)).toBeCloseTo(228.5513657179179, 9)
      expect(s21.profit_usd).toBeNull()
      expect(rows.some((r) => r.subject_id === "antminer-l7")).toBe(false)
      const portfolio = rows.find((r) => r.subject_kind === "portfolio")!
      expect(portfolio.subject_id).toBe("u1")
      // 37.29068… USD/day over 17.323 kW × 24 h.
      expect(Number(portfolio.breakeven)).toBeCloseTo(37.29068487882617 / (17.323 * 24), 12)
      expect(Number(portfolio.profit_usd)).toBeLessThan(Number(portfolio.revenue_usd))
    }),
  )

  effectTest("a tenant-wide refresh drops forecasts of users who no longer hold miners", () =>
    Effect.gen(function* () {
      const tenant = crypto.randomUUID()
      yield* updateMarketData(tenant, network)
      yield* addMiner(tenant, "u1", "antminer-s21", 1, 0.05)
      yield* addMiner(tenant, "u2", "antminer-s21", 1, 0.05)
      expect(yield* refreshForecasts(tenant)).toEqual({ models: 38, portfolios: 2 })
      const sql = yield* SqlClient.SqlClient
      yield* sql`UPDATE miners SET status = 'retired' WHERE tenant_id = ${tenant} AND user_id = 'u2'`
      expect(yield* refreshForecasts(tenant)).toEqual({ models: 38, portfolios: 1 })
      const portfolios = (yield* forecastsOf(tenant)).filter((r) => r.subject_kind === "portfolio")
      expect(portfolios.map((r) => r.subject_id)).toEqual(["u1"])
    }),
  )
})
