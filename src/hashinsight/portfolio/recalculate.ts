/**
 * `recalculatePortfolio`: recomputes one user's portfolio from their active holdings, the
 * catalogue, the tenant's latest market data and their treasury, and upserts `portfolios`. The
 * caller holds the user's lock and passes its fencing token; a write carrying an older token than
 * the stored one (a holder whose lock expired meanwhile) is rejected with `StaleFenceToken`.
 */
import { SqlClient } from "@effect/sql"
import { Effect, Option, Schema } from "effect"
import { withTenant } from "../../platform/db.ts"
import { capacityOf, earningsOf } from "../economics.ts"
import { latestMarketData } from "../ops/market-data.ts"
import { activeHoldings, treasuryBtcOf } from "./holdings.ts"

export class StaleFenceToken extends Schema.TaggedError<StaleFenceToken>()("StaleFenceToken", {
  tenantId: Schema.String,
  userId: Schema.String,
  fenceToken: Schema.Number,
}) {
  override get message() {
    return `portfolio of ${this.userId} was already written with a newer fencing token than ${this.fenceToken}`
  }
}

export const recalculatePortfolio = Effect.fn("Portfolio.recalculate")(function* (
  tenantId: string,
  userId: string,
  fenceToken: number,
) {
  return yield* withTenant(tenantId)(
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const capacity = capacityOf(yield* activeHoldings([userId]))
      const treasuryBtc = yield* treasuryBtcOf(userId)
      const market = yield* latestMarketData
      const earnings = Option.map(market, (m) => earningsOf(capacity, treasuryBtc, m))
      const portfolio = {
        userId,
        ...capacity,
        treasuryBtc,
        dailyRevenueBtc: Option.getOrNull(Option.map(earnings, (e) => e.dailyRevenueBtc)),
        dailyRevenueUsd: Option.getOrNull(Option.map(earnings, (e) => e.dailyRevenueUsd)),
        dailyProfitUsd: Option.getOrNull(Option.map(earnings, (e) => e.dailyProfitUsd)),
        treasuryUsd: Option.getOrNull(Option.map(earnings, (e) => e.treasuryUsd)),
        btcPriceUsd: Option.getOrNull(Option.map(market, (m) => m.btcPriceUsd)),
        difficulty: Option.getOrNull(Option.map(market, (m) => m.difficulty)),
        fenceToken,
      }
      const written = yield* sql`
        INSERT INTO portfolios ${sql.insert({
          tenant_id: tenantId,
          user_id: userId,
          miner_count: capacity.minerCount,
          unpriced_miner_count: capacity.unpricedMinerCount,
          total_hashrate_ths: capacity.totalHashrateThs,
          total_power_w: capacity.totalPowerW,
          daily_power_cost_usd: capacity.dailyPowerCostUsd,
          treasury_btc: treasuryBtc,
          daily_revenue_btc: portfolio.dailyRevenueBtc,
          daily_revenue_usd: portfolio.dailyRevenueUsd,
          daily_profit_usd: portfolio.dailyProfitUsd,
          treasury_usd: portfolio.treasuryUsd,
          btc_price_usd: portfolio.btcPriceUsd,
          difficulty: portfolio.difficulty,
          fence_token: fenceToken,
        })}
        ON CONFLICT (tenant_id, user_id) DO UPDATE SET
          miner_count = EXCLUDED.miner_count,
          unpriced_miner_count = EXCLUDED.unpriced_miner_count,
          total_hashrate_ths = EXCLUDED.total_hashrate_ths,
          total_power_w = EXCLUDED.total_power_w,
          daily_power_cost_usd = EXCLUDED.daily_power_cost_usd,
          treasury_btc = EXCLUDED.treasury_btc,
          daily_revenue_btc = EXCLUDED.daily_revenue_btc,
          daily_revenue_usd = EXCLUDED.daily_revenue_usd,
          daily_profit_usd = EXCLUDED.daily_profit_usd,
          treasury_usd = EXCLUDED.treasury_usd,
          btc_price_usd = EXCLUDED.btc_price_usd,
          difficulty = EXCLUDED.difficulty,
          computed_at = now(),
          fence_token = EXCLUDED.fence_token
        WHERE portfolios.fence_token <= EXCLUDED.fence_token
        RETURNING user_id`
      if (written.length === 0) return yield* new StaleFenceToken({ tenantId, userId, fenceToken })
      return portfolio
    }),
  )
})
