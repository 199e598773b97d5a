/**
 * The global miner catalogue (`miner_models`, migration 006): nameplate specs of ASIC models.
 * Not tenant data, so it reads the same under any role.
 */
import { SqlClient, SqlSchema } from "@effect/sql"
import { Effect, Schema } from "effect"
import { Numeric } from "./sql-numeric.ts"

export const MinerModel = Schema.Struct({
  id: Schema.String,
  vendor: Schema.String,
  model: Schema.String,
  algorithm: Schema.String,
  hashrateThs: Numeric,
  powerW: Numeric,
  efficiencyJPerTh: Numeric,
  releaseYear: Schema.Int,
})
export type MinerModel = typeof MinerModel.Type

const columns = (sql: SqlClient.SqlClient) => sql`
  id, vendor, model, algorithm, hashrate_ths AS "hashrateThs", power_w AS "powerW",
  efficiency_j_per_th AS "efficiencyJPerTh", release_year AS "releaseYear"`

/** Every model, by vendor then efficiency (best first). */
export const listMinerModels = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  return yield* SqlSchema.findAll({
    Request: Schema.Void,
    Result: MinerModel,
    execute: () => sql`SELECT ${columns(sql)} FROM miner_models ORDER BY vendor, efficiency_j_per_th, id`,
  })(undefined)
}).pipe(Effect.withSpan("Catalogue.list"))

export const findMinerModel = Effect.fn("Catalogue.find")(function* (id: string) {
  const sql = yield* SqlClient.SqlClient
  return yield* SqlSchema.findOne({
    Request: Schema.String,
    Result: MinerModel,
    execute: (modelId) => sql`SELECT ${columns(sql)} FROM miner_models WHERE id = ${modelId}`,
  })(id)
})
