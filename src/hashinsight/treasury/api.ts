/** Treasury routes: a user's BTC movements. */
import { HttpApiEndpoint, HttpApiGroup, OpenApi } from "@effect/platform"
import { Schema } from "effect"
import { Authentication } from "../../http/authentication.ts"
import { withIdempotencyKey } from "../../http/idempotency.ts"

import { UserId } from "../miners/schema.ts"
import { At } from "../request-schema.ts"
import { treasuryTopic } from "../topics.ts"

const Kind = treasuryTopic.events.TreasuryTransactionRecorded.fields.kind

export const RecordTransaction = Schema.Struct({
  userId: UserId,
  kind: Kind.annotations({ description: "Which way BTC moved; withdrawals and sales reduce holdings" }),
  btc: Schema.Number.pipe(
    Schema.finite(),
    Schema.positive(),
    Schema.lessThanOrEqualTo(21_000_000),
  ).annotations({
    description: "Amount in BTC, always positive",
  }),
  usd: Schema.optional(Schema.Number.pipe(Schema.finite(), Schema.between(0, 1e15))),
  at: Schema.optional(At),
}).annotations({ identifier: "RecordTransaction" })

export const TreasuryTransaction = Schema.Struct({
  transactionId: Schema.String,
  userId: Schema.String,
  kind: Kind,
  btc: Schema.Number,
  usd: Schema.optional(Schema.Number),
  at: Schema.Date,
  eventId: Schema.String,
}).annotations({ identifier: "TreasuryTransaction" })

export class TreasuryGroup extends HttpApiGroup.make("treasury")
  .add(
    HttpApiEndpoint.post("recordTransaction", "/api/treasury/transactions")
      .setPayload(RecordTransaction)
      .addSuccess(TreasuryTransaction, { status: 201 })
      .pipe(withIdempotencyKey)
      .annotate(OpenApi.Summary, "Record a treasury transaction (appends TreasuryTransactionRecorded)"),
  )
  .middleware(Authentication) {}
