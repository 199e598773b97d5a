/** What the miners routes accept and return. Text is bounded and free of NUL (PostgreSQL rejects it). */
import { Schema } from "effect"

const Text = (max: number) =>
  Schema.String.pipe(
    Schema.minLength(1),
    Schema.maxLength(max),
    Schema.filter((s) => !s.includes("\u0000") || "must not contain NUL characters"),
  )

export const UserId = Text(128).annotations({ description: "The platform user who holds the miners" })
export const ModelId = Text(64).annotations({
  description: "A model id from GET /api/miner-models, e.g. antminer-s21",
})
export const MinerId = Schema.UUID.annotations({ description: "The holding's id" })

export const AddMiner = Schema.Struct({
  userId: UserId,
  modelId: ModelId,
  count: Schema.Int.pipe(Schema.between(1, 1_000_000)),
  site: Text(128),
  powerPriceUsdPerKwh: Schema.Number.pipe(Schema.finite(), Schema.between(0, 100)),
}).annotations({ identifier: "AddMiner" })
export type AddMiner = typeof AddMiner.Type

export const Miner = Schema.Struct({
  id: MinerId,
  userId: Schema.String,
  modelId: Schema.String,
  count: Schema.Int,
  site: Schema.String,
  powerPriceUsdPerKwh: Schema.Number,
  status: Schema.String,
  createdAt: Schema.Date,
}).annotations({ identifier: "Miner" })
export type Miner = typeof Miner.Type

export const MinerList = Schema.Array(Miner)

export const ListMinersParams = Schema.Struct({ userId: Schema.optional(UserId) })
