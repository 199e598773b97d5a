/**
 * Market and network observations per tenant: `updateMarketData` appends a `market_data` row and
 * its `MarketDataUpdated` event in one transaction; `latestMarketData` is the newest observation.
 */
import { SqlClient, SqlSchema } from "@effect/sql"
import { Effect, Schema } from "effect"
import { Outbox } from "../../engine/outbox.ts"
import { withTenant } from "../../platform/db.ts"
import { type EventMeta, eventFields } from "../event-meta.ts"
import { Numeric } from "../sql-numeric.ts"
import { opsTopic } from "../topics.ts"

const { at: _at, ...marketFields } = opsTopic.events.MarketDataUpdated.fields

export const MarketDataInput = Schema.Struct({ ...marketFields, at: Schema.optional(Schema.Date) })
export type MarketDataInput = typeof MarketDataInput.Type

/** Every tenant's market events share one key, so they stay in order on one partition. */
export const marketAggregateId = "market"

export const updateMarketData = Effect.fn("Ops.updateMarketData")(function* (
  tenantId: string,
  input: MarketDataInput,
  meta: EventMeta = {},
) {
  const outbox = yield* Outbox
  const market = {
    btcPriceUsd: input.btcPriceUsd,
    difficulty: input.difficulty,
    blockRewardBtc: input.blockRewardBtc,
    feesBtcPerBlock: input.feesBtcPerBlock,
    at: (input.at ?? new Date()).toISOString(),
  }
  const [eventId] = yield* withTenant(tenantId)(
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      yield* sql`INSERT INTO market_data ${sql.insert({
        tenant_id: tenantId,
        id: Bun.randomUUIDv7(),
        btc_price_usd: market.btcPriceUsd,
        difficulty: market.difficulty,
        block_reward_btc: market.blockRewardBtc,
        fees_btc_per_block: market.feesBtcPerBlock,
        at: market.at,
      })}`
      return yield* outbox.append(opsTopic, [
        {
          type: "MarketDataUpdated",
          aggregateId: marketAggregateId,
          tenantId,
          payload: market,
          ...eventFields(meta),
        },
      ])
    }),
  )
  return { ...market, eventId: eventId! }
})

export const MarketData = Schema.Struct({
  btcPriceUsd: Numeric,
  difficulty: Numeric,
  blockRewardBtc: Numeric,
  feesBtcPerBlock: Numeric,
  at: Schema.DateFromSelf,
})
export type MarketData = typeof MarketData.Type

/** The current tenant's newest observation; run it under `withTenant`. */
export const latestMarketData = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  return yield* SqlSchema.findOne({
    Request: Schema.Void,
    Result: MarketData,
    execute: () => sql`
      SELECT btc_price_usd AS "btcPriceUsd", difficulty, block_reward_btc AS "blockRewardBtc",
             fees_btc_per_block AS "feesBtcPerBlock", at
      FROM market_data ORDER BY at DESC, created_at DESC, id DESC LIMIT 1`,
  })(undefined)
}).pipe(Effect.withSpan("Ops.latestMarketData"))
