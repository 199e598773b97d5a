/**
 * Reads a portfolio is computed from, under the caller's tenant (run inside `withTenant`): active
 * holdings joined with the catalogue, and treasury BTC.
 */
import { SqlClient, SqlSchema } from "@effect/sql"
import { Effect, Schema } from "effect"
import { Numeric } from "../sql-numeric.ts"

export const HoldingRow = Schema.Struct({
  userId: Schema.String,
  count: Schema.Int,
  hashrateThs: Numeric,
  powerW: Numeric,
  algorithm: Schema.String,
  powerPriceUsdPerKwh: Numeric,
})
export type HoldingRow = typeof HoldingRow.Type

/** Active holdings of the given users, or of every user of the tenant when `userIds` is omitted. */
export const activeHoldings = Effect.fn("Portfolio.activeHoldings")(function* (
  userIds?: ReadonlyArray<string>,
) {
  const sql = yield* SqlClient.SqlClient
  return yield* SqlSchema.findAll({
    Request: Schema.Void,
    Result: HoldingRow,
    execute: () => sql`
      SELECT m.user_id AS "userId", m.count, mm.hashrate_ths AS "hashrateThs", mm.power_w AS "powerW",
             mm.algorithm, m.power_price_usd_per_kwh AS "powerPriceUsdPerKwh"
      FROM miners m JOIN miner_models mm ON mm.id = m.model_id
      WHERE m.status = 'active' ${userIds === undefined ? sql`` : sql`AND m.user_id IN ${sql.in(userIds)}`}`,
  })(undefined)
})

/** Treasury BTC per user; a user without transactions holds 0. */
export const treasuryBtcOfUsers = Effect.fn("Portfolio.treasuryBtc")(function* (
  userIds: ReadonlyArray<string>,
) {
  const sql = yield* SqlClient.SqlClient
  const rows = yield* SqlSchema.findAll({
    Request: Schema.Void,
    Result: Schema.Struct({ userId: Schema.String, btc: Numeric }),
    execute: () => sql`
      SELECT user_id AS "userId", sum(btc_delta) AS btc FROM treasury_transactions
      WHERE user_id IN ${sql.in(userIds)} GROUP BY user_id`,
  })(undefined)
  const byUser = new Map(rows.map((r) => [r.userId, r.btc]))
  return new Map(userIds.map((u) => [u, byUser.get(u) ?? 0]))
})

/** Holdings by user, each user's in query order. */
export const groupByUser = (holdings: ReadonlyArray<HoldingRow>) => {
  const byUser = new Map<string, Array<HoldingRow>>()
  for (const h of holdings) {
    const list = byUser.get(h.userId)
    if (list) list.push(h)
    else byUser.set(h.userId, [h])
  }
  return byUser
}
