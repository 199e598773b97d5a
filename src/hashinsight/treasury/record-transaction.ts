/**
 * A treasury movement: the `treasury_transactions` row and its `TreasuryTransactionRecorded` event
 * commit together under the tenant's RLS. Amounts are positive; the kind says which way BTC moved
 * (the table derives the signed `btc_delta` that holdings sum).
 */
import { SqlClient } from "@effect/sql"
import { Effect, Schema } from "effect"
import { Outbox } from "../../engine/outbox.ts"
import { withTenant } from "../../platform/db.ts"
import { type EventMeta, eventFields } from "../event-meta.ts"
import { treasuryTopic } from "../topics.ts"

export const TreasuryTransactionInput = Schema.Struct({
  userId: Schema.String.pipe(Schema.minLength(1), Schema.maxLength(128)),
  kind: treasuryTopic.events.TreasuryTransactionRecorded.fields.kind,
  btc: Schema.Number.pipe(Schema.finite(), Schema.positive()),
  usd: Schema.optional(Schema.Number.pipe(Schema.finite(), Schema.nonNegative())),
  at: Schema.optional(Schema.Date),
})
export type TreasuryTransactionInput = typeof TreasuryTransactionInput.Type

export const recordTreasuryTransaction = Effect.fn("Treasury.recordTransaction")(function* (
  tenantId: string,
  input: TreasuryTransactionInput,
  meta: EventMeta = {},
) {
  const outbox = yield* Outbox
  const transaction = {
    transactionId: Bun.randomUUIDv7(),
    userId: input.userId,
    kind: input.kind,
    btc: input.btc,
    usd: input.usd,
    at: (input.at ?? new Date()).toISOString(),
  }
  const [eventId] = yield* withTenant(tenantId)(
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      yield* sql`INSERT INTO treasury_transactions ${sql.insert({
        tenant_id: tenantId,
        id: transaction.transactionId,
        user_id: transaction.userId,
        kind: transaction.kind,
        btc: transaction.btc,
        usd: transaction.usd ?? null,
        at: transaction.at,
      })}`
      return yield* outbox.append(treasuryTopic, [
        {
          type: "TreasuryTransactionRecorded",
          aggregateId: transaction.userId,
          tenantId,
          payload: transaction,
          ...eventFields(meta),
        },
      ])
    }),
  )
  return { ...transaction, eventId: eventId! }
})
