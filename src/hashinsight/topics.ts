/**
 * HashInsight's topics, each declared once with a payload Schema per event type (or its versions).
 * The relay routes by aggregate type (`events.miner`, `events.treasury`, `events.ops`, `events.crm`);
 * consumers decode with these Schemas. A change that would break records already written is a new
 * version with an upcast: `bun run schemas check` (part of `bun run check`) holds the declarations
 * to the snapshot under `schemas/`.
 */
import { Schema } from "effect"
import { eventVersions } from "../engine/event-versions.ts"
import { defineTopic } from "../engine/topic.ts"

const UserId = Schema.String.pipe(Schema.minLength(1), Schema.maxLength(128))
const NonNegative = Schema.Number.pipe(Schema.finite(), Schema.nonNegative())
const Positive = Schema.Number.pipe(Schema.finite(), Schema.positive())

export const MinerHolding = Schema.Struct({
  minerId: Schema.String,
  userId: UserId,
  modelId: Schema.String,
  count: Schema.Int.pipe(Schema.positive()),
  site: Schema.String,
  powerPriceUsdPerKwh: NonNegative,
})

/** v2 of MinerAdded: the holding's firmware, null when none was given. */
export const MinerAddedV2 = Schema.Struct({
  ...MinerHolding.fields,
  firmware: Schema.NullOr(Schema.String.pipe(Schema.minLength(1), Schema.maxLength(64))),
})

export const minerTopic = defineTopic("miner", {
  // A v1 holding was added before firmware was recorded: it has none.
  MinerAdded: eventVersions(MinerHolding).next(MinerAddedV2, (v1) => ({ ...v1, firmware: null })),
  MinerChanged: MinerHolding,
  MinerRetired: Schema.Struct({ minerId: Schema.String, userId: UserId }),
})

export const treasuryTopic = defineTopic("treasury", {
  TreasuryTransactionRecorded: Schema.Struct({
    transactionId: Schema.String,
    userId: UserId,
    kind: Schema.Literal("deposit", "withdrawal", "mining_payout", "sale", "purchase"),
    btc: Schema.Number.pipe(Schema.finite()),
    usd: Schema.optional(Schema.Number.pipe(Schema.finite())),
    at: Schema.String,
  }),
})

export const opsTopic = defineTopic("ops", {
  MarketDataUpdated: Schema.Struct({
    btcPriceUsd: Positive,
    difficulty: Positive,
    blockRewardBtc: Positive,
    feesBtcPerBlock: NonNegative,
    at: Schema.String,
  }),
  SiteIncidentReported: Schema.Struct({
    incidentId: Schema.String,
    site: Schema.String,
    severity: Schema.Literal("info", "minor", "major", "critical"),
    description: Schema.String,
    at: Schema.String,
  }),
})

export const crmTopic = defineTopic("crm", {
  AccountUpserted: Schema.Struct({
    accountId: Schema.String,
    userId: UserId,
    name: Schema.String,
    tier: Schema.Literal("retail", "pro", "institutional"),
  }),
  ContactUpserted: Schema.Struct({
    contactId: Schema.String,
    accountId: Schema.String,
    email: Schema.String,
    name: Schema.String,
  }),
})

export const topics = [minerTopic, treasuryTopic, opsTopic, crmTopic] as const
