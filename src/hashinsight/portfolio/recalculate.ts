/**
 * `recalculatePortfolio(s)`: recomputes one user's (or several users') portfolio from their active
 * holdings, the catalogue, the tenant's latest market data and their treasury, and upserts
 * `portfolios`. The caller holds the user's lock and passes its fencing token; a write carrying an older token than
 * the stored one (a holder whose lock expired meanwhile) is rejected with `StaleFenceToken`.
 */
import { SqlClient } from "@effect/sql"
import { Effect, Option, Schema } from "effect"
import { withTenant } from "../../platform/db.ts"
import { capacityOf, earningsOf } from "../economics.ts"
import { latestMarketData } from "../ops/market-data.ts"
import { activeHoldings, groupByUser, treasuryBtcOfUsers } from "./holdings.ts"

export class StaleFenceToken extends Schema.TaggedError<StaleFenceToken>()("StaleFenceToken", {
  tenantId: Schema.String,
  userId: Schema.String,
  fenceToken: Schema.Number,
  /** The token the stored portfolio was written with. */
  newest: Schema.Number,
}) {
  override get message() {
    return `portfolio of ${this.userId} was already written with fencing token ${this.newest}, newer than ${this.fenceToken}`
  }
}

export interface PortfolioTarget {
  readonly userId: string
  readonly fenceToken: number
}

/**
 * Recalculates several users of one tenant in one round of statements (holdings, treasury and market
 * read once for all of them, one upsert in user order). Any stale token fails the whole call.
 */
export const recalculatePortfolios = Effect.fn("Portfolio.recalculateMany")(function* (
  tenantId: string,
  targets: ReadonlyArray<PortfolioTarget>,
) {
  // One write per user: the newest token asked for wins (all come from the same holder in a unit).
  const byUser = new Map<string, number>()
  for (const t of targets) byUser.set(t.userId, Math.max(t.fenceToken, byUser.get(t.userId) ?? 0))
  const users = [...byUser.keys()].sort()
  if (users.length === 0) return []
  return yield* withTenant(tenantId)(
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const holdings = groupByUser(yield* activeHoldings(users))
      const treasury = yield* treasuryBtcOfUsers(users)
      const market = yield* latestMarketData
      const portfolios = users.map((userId) => {
        const capacity = capacityOf(holdings.get(userId) ?? [])
        const treasuryBtc = treasury.get(userId) ?? 0
        const earnings = Option.map(market, (m) => earningsOf(capacity, treasuryBtc, m))
        return {
          userId,
          ...capacity,
          treasuryBtc,
          dailyRevenueBtc: Option.getOrNull(Option.map(earnings, (e) => e.dailyRevenueBtc)),
          dailyRevenueUsd: Option.getOrNull(Option.map(earnings, (e) => e.dailyRevenueUsd)),
          dailyProfitUsd: Option.getOrNull(Option.map(earnings, (e) => e.dailyProfitUsd)),
          treasuryUsd: Option.getOrNull(Option.map(earnings, (e) => e.treasuryUsd)),
          btcPriceUsd: Option.getOrNull(Option.map(market, (m) => m.btcPriceUsd)),
          difficulty: Option.getOrNull(Option.map(market, (m) => m.difficulty)),
          fenceToken: byUser.get(userId)!,
        }
      })
      const written = yield* sql<{ user_id: string }>`
        INSERT INTO portfolios ${sql.insert(
          portfolios.map((p) => ({
            tenant_id: tenantId,
            user_id: p.userId,
            miner_count: p.minerCount,
            unpriced_miner_count: p.unpricedMinerCount,
            total_hashrate_ths: p.totalHashrateThs,
            total_power_w: p.totalPowerW,
            daily_power_cost_usd: p.dailyPowerCostUsd,
            treasury_btc: p.treasuryBtc,
            daily_revenue_btc: p.dailyRevenueBtc,
            daily_revenue_usd: p.dailyRevenueUsd,
            daily_profit_usd: p.dailyProfitUsd,
            treasury_usd: p.treasuryUsd,
            btc_price_usd: p.btcPriceUsd,
            difficulty: p.difficulty,
            fence_token: p.fenceToken,
          })),
        )}
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
      if (written.length < portfolios.length) {
        const done = new Set(written.map((r) => r.user_id))
        const stale = portfolios.find((p) => !done.has(p.userId))!
        const [stored] = yield* sql<{ token: string }>`
          SELECT fence_token::text AS token FROM portfolios WHERE user_id = ${stale.userId}`
        return yield* new StaleFenceToken({
          tenantId,
          userId: stale.userId,
          fenceToken: stale.fenceToken,
          newest: Number(stored?.token ?? stale.fenceToken),
        })
      }
      return portfolios
    }),
  )
})

export const recalculatePortfolio = Effect.fn("Portfolio.recalculate")(function* (
  tenantId: string,
  userId: string,
  fenceToken: number,
) {
  const [portfolio] = yield* recalculatePortfolios(tenantId, [{ userId, fenceToken }])
  return portfolio!
})
