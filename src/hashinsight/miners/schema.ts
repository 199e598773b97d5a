/** What the miners routes accept and return. Text is bounded and free of NUL (PostgreSQL rejects it). */
import { Schema } from "effect"
import { Text } from "../request-schema.ts"

export const UserId = Text(128).annotations({ description: "The platform user who holds the miners" })
export const ModelId = Text(64).annotations({
  description: "A model id from GET /api/miner-models, e.g. antminer-s21",
})
export const MinerId = Schema.UUID.annotations({ description: "The holding's id" })

const Count = Schema.Int.pipe(Schema.between(1, 1_000_000))
const Site = Text(128)
const PowerPrice = Schema.Number.pipe(Schema.finite(), Schema.between(0, 100))
const Firmware = Text(64).annotations({ description: "The firmware the miners run, e.g. braiins-os-24.03" })

export const AddMiner = Schema.Struct({
  userId: UserId,
  modelId: ModelId,
  count: Count,
  site: Site,
  powerPriceUsdPerKwh: PowerPrice,
  firmware: Schema.optional(Firmware),
}).annotations({ identifier: "AddMiner" })
export type AddMiner = typeof AddMiner.Type

export const ChangeMiner = Schema.Struct({
  count: Schema.optional(Count),
  site: Schema.optional(Site),
  powerPriceUsdPerKwh: Schema.optional(PowerPrice),
})
  .pipe(
    Schema.filter(
      (c) =>
        c.count !== undefined ||
        c.site !== undefined ||
        c.powerPriceUsdPerKwh !== undefined ||
        "change at least one of count, site, powerPriceUsdPerKwh",
    ),
  )
  .annotations({ identifier: "ChangeMiner" })
export type ChangeMiner = typeof ChangeMiner.Type

export const Miner = Schema.Struct({
  id: MinerId,
  userId: Schema.String,
  modelId: Schema.String,
  count: Schema.Int,
  site: Schema.String,
  powerPriceUsdPerKwh: Schema.Number,
  firmware: Schema.NullOr(Schema.String),
  status: Schema.String,
  createdAt: Schema.Date,
}).annotations({ identifier: "Miner" })
export type Miner = typeof Miner.Type

export const MinerList = Schema.Array(Miner)

export const ListMinersParams = Schema.Struct({ userId: Schema.optional(UserId) })
