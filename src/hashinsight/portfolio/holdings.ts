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

export const treasuryBtcOf = Effect.fn("Portfolio.treasuryBtc")(function* (userId: string) {
  const sql = yield* SqlClient.SqlClient
  const [row] = yield* SqlSchema.findAll({
    Request: Schema.String,
    Result: Schema.Struct({ btc: Numeric }),
    execute: (user) => sql`
      SELECT coalesce(sum(btc_delta), 0) AS btc FROM treasury_transactions WHERE user_id = ${user}`,
  })(userId)
  return row?.btc ?? 0
})
