/**
 * What the portfolio and intel consumers run once per unit for every user it touched: several
 * users' portfolios in one round of statements, and only the users' own forecasts on a holdings
 * change (model forecasts follow the market data alone).
 */
import { describe, expect } from "bun:test"
import { SqlClient } from "@effect/sql"
import { Effect } from "effect"
import { FencingRejected } from "../../src/engine/consumer/errors.ts"
import { asLockFencing, portfolioLockKey } from "../../src/hashinsight/consumers/portfolio.ts"
import { updateMarketData } from "../../src/hashinsight/ops/market-data.ts"
import {
  recalculatePortfolio,
  recalculatePortfolios,
  StaleFenceToken,
} from "../../src/hashinsight/portfolio/recalculate.ts"
import { refreshForecasts, refreshUserForecasts } from "../../src/hashinsight/portfolio/refresh-forecasts.ts"
import { recordTreasuryTransaction } from "../../src/hashinsight/treasury/record-transaction.ts"
import { effectTest } from "../support/effect.ts"

const network = { btcPriceUsd: 60_000, difficulty: 1e14, blockRewardBtc: 3.125, feesBtcPerBlock: 0.1 }

const addMiner = (tenantId: string, userId: string, modelId: string, count: number) =>
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
        power_price_usd_per_kwh: 0.05,
        status: "active",
      })}`,
  )

const portfoliosOf = (tenantId: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.map(
      sql<Record<string, unknown>>`SELECT * FROM portfolios WHERE tenant_id = ${tenantId} ORDER BY user_id`,
      (rows) => rows.map(({ computed_at: _at, ...figures }) => figures),
    ),
  )

const forecastsOf = (tenantId: string) =>
  Effect.flatMap(
    SqlClient.SqlClient,
    (sql) => sql<{ subject_kind: string; subject_id: string; computed_at: Date }>`
      SELECT subject_kind, subject_id, computed_at FROM forecasts
      WHERE tenant_id = ${tenantId} ORDER BY subject_kind, subject_id`,
  )

const seed = (tenantId: string) =>
  Effect.gen(function* () {
    yield* updateMarketData(tenantId, network)
    yield* addMiner(tenantId, "u1", "antminer-s21", 2)
    yield* addMiner(tenantId, "u2", "whatsminer-m60s", 3)
    yield* addMiner(tenantId, "u2", "antminer-s21", 1)
    yield* recordTreasuryTransaction(tenantId, { userId: "u2", kind: "mining_payout", btc: 0.5 })
  })

describe("portfolio batch", () => {
  effectTest("several users in one call write what one call per user writes", () =>
    Effect.gen(function* () {
      const [batched, single] = [crypto.randomUUID(), crypto.randomUUID()]
      for (const t of [batched, single]) yield* seed(t)
      // u3 has nothing: an empty portfolio, as a single recalculation writes it.
      yield* recalculatePortfolios(batched, [
        { userId: "u2", fenceToken: 3 },
        { userId: "u1", fenceToken: 1 },
        { userId: "u3", fenceToken: 7 },
      ])
      yield* recalculatePortfolio(single, "u1", 1)
      yield* recalculatePortfolio(single, "u2", 3)
      yield* recalculatePortfolio(single, "u3", 7)
      const strip = (rows: ReadonlyArray<Record<string, unknown>>) =>
        rows.map(({ tenant_id: _t, ...rest }) => rest)
      const rows = strip(yield* portfoliosOf(batched))
      expect(rows).toEqual(strip(yield* portfoliosOf(single)))
      expect(rows.map((r) => [r.user_id, Number(r.treasury_btc), Number(r.fence_token)])).toEqual([
        ["u1", 0, 1],
        ["u2", 0.5, 3],
        ["u3", 0, 7],
      ])
    }),
  )

  effectTest("one stale token fails the call and writes none of its users", () =>
    Effect.gen(function* () {
      const tenant = crypto.randomUUID()
      yield* seed(tenant)
      yield* recalculatePortfolios(tenant, [
        { userId: "u1", fenceToken: 5 },
        { userId: "u2", fenceToken: 5 },
      ])
      yield* addMiner(tenant, "u1", "antminer-s21", 10)
      const error = yield* Effect.flip(
        recalculatePortfolios(tenant, [
          { userId: "u1", fenceToken: 6 },
          { userId: "u2", fenceToken: 4 },
        ]),
      )
      expect(error).toBeInstanceOf(StaleFenceToken)
      expect(error).toMatchObject({ userId: "u2", fenceToken: 4, newest: 5 })
      // The consumer reports it as the engine's fence on the user's lock, which the runtime retries
      // after raising the lock's counter past the stored token.
      const asSeenByTheRuntime = yield* Effect.flip(
        asLockFencing(recalculatePortfolios(tenant, [{ userId: "u2", fenceToken: 4 }])),
      )
      expect(asSeenByTheRuntime).toBeInstanceOf(FencingRejected)
      expect(asSeenByTheRuntime).toMatchObject({ lockKey: portfolioLockKey("u2"), token: 4, newest: 5 })
      const rows = yield* portfoliosOf(tenant)
      expect(rows.map((r) => [r.user_id, r.miner_count, Number(r.fence_token)])).toEqual([
        ["u1", 2, 5],
        ["u2", 4, 5],
      ])
    }),
  )
})

describe("user forecasts", () => {
  effectTest("a holdings change refreshes only those users' forecasts, not the models'", () =>
    Effect.gen(function* () {
      const tenant = crypto.randomUUID()
      yield* seed(tenant)
      expect(yield* refreshForecasts(tenant)).toEqual({ models: 38, portfolios: 2 })
      const before = new Map((yield* forecastsOf(tenant)).map((r) => [r.subject_id, r.computed_at.getTime()]))
      yield* Effect.sleep("20 millis")
      yield* addMiner(tenant, "u3", "antminer-s21", 1)
      expect(yield* refreshUserForecasts(tenant, ["u1", "u3", "u1"])).toEqual({ models: 0, portfolios: 2 })
      const after = yield* forecastsOf(tenant)
      const changed = after.filter((r) => r.computed_at.getTime() !== before.get(r.subject_id))
      expect(changed.map((r) => `${r.subject_kind}:${r.subject_id}`)).toEqual([
        "portfolio:u1",
        "portfolio:u3",
      ])
      expect(after.filter((r) => r.subject_kind === "portfolio").map((r) => r.subject_id)).toEqual([
        "u1",
        "u2",
        "u3",
      ])
    }),
  )
})
