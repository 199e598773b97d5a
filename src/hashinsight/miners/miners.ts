/**
 * Miner holdings. Every method runs in the caller's tenant transaction (`withTenant`), so RLS
 * scopes what it reads and writes; `add`, `change` and `retire` append `MinerAdded`,
 * `MinerChanged` and `MinerRetired` to the outbox in that same transaction, so the row and its
 * event commit together. Another tenant's holding is invisible: it is `NotFound` like a missing one.
 */
import { SqlClient, type SqlError } from "@effect/sql"
import { Context, Effect, Layer, Option, Schema } from "effect"
import { Outbox } from "../../engine/outbox.ts"
import { isForeignKeyViolation } from "../../platform/sql-errors.ts"
import { Conflict, NotFound } from "../errors.ts"
import { minerTopic } from "../topics.ts"
import type { AddMiner, ChangeMiner, Miner } from "./schema.ts"

const listLimit = 500

interface MinerRow {
  readonly id: string
  readonly userId: string
  readonly modelId: string
  readonly count: number
  readonly site: string
  readonly powerPriceUsdPerKwh: number
  readonly firmware: string | null
  readonly status: string
  readonly createdAt: Date
}

const columns = (sql: SqlClient.SqlClient) =>
  sql.literal(`id, user_id AS "userId", model_id AS "modelId", count, site,
    power_price_usd_per_kwh::float8 AS "powerPriceUsdPerKwh", firmware, status, created_at AS "createdAt"`)

/** A holding of a model the catalogue does not have. */
export class UnknownModel extends Schema.TaggedError<UnknownModel>()("UnknownModel", {
  modelId: Schema.String,
}) {
  override get message() {
    return `no miner model '${this.modelId}' in the catalogue`
  }
}

export class Miners extends Context.Tag("hashinsight/app/Miners")<
  Miners,
  {
    readonly add: (
      tenantId: string,
      input: AddMiner,
    ) => Effect.Effect<Miner, UnknownModel | SqlError.SqlError, SqlClient.SqlClient>
    readonly change: (
      tenantId: string,
      id: string,
      patch: ChangeMiner,
    ) => Effect.Effect<Miner, NotFound | Conflict | SqlError.SqlError, SqlClient.SqlClient>
    readonly retire: (
      tenantId: string,
      id: string,
    ) => Effect.Effect<Miner, NotFound | Conflict | SqlError.SqlError, SqlClient.SqlClient>
    readonly get: (id: string) => Effect.Effect<Option.Option<Miner>, SqlError.SqlError, SqlClient.SqlClient>
    readonly list: (
      userId: string | undefined,
    ) => Effect.Effect<ReadonlyArray<Miner>, SqlError.SqlError, SqlClient.SqlClient>
  }
>() {
  static readonly layer = Layer.effect(
    Miners,
    Effect.gen(function* () {
      const outbox = yield* Outbox
      const add = Effect.fn("Miners.add")(function* (tenantId: string, input: AddMiner) {
        const sql = yield* SqlClient.SqlClient
        const id = Bun.randomUUIDv7()
        const [row] = yield* sql<MinerRow>`
          INSERT INTO miners (id, tenant_id, user_id, model_id, count, site, power_price_usd_per_kwh, firmware)
          VALUES (${id}, ${tenantId}, ${input.userId}, ${input.modelId}, ${input.count}, ${input.site},
                  ${input.powerPriceUsdPerKwh}, ${input.firmware ?? null})
          RETURNING ${columns(sql)}`.pipe(
          Effect.catchIf(isForeignKeyViolation, () =>
            Effect.fail(new UnknownModel({ modelId: input.modelId })),
          ),
        )
        const miner = row as MinerRow
        yield* outbox
          .append(minerTopic, [
            {
              type: "MinerAdded",
              aggregateId: id,
              tenantId,
              payload: {
                minerId: id,
                userId: miner.userId,
                modelId: miner.modelId,
                count: miner.count,
                site: miner.site,
                powerPriceUsdPerKwh: miner.powerPriceUsdPerKwh,
                firmware: miner.firmware,
              },
            },
          ])
          .pipe(Effect.catchTags({ OutboxOutsideTransaction: Effect.die, ParseError: Effect.die }))
        return miner
      })
      /** Why an active holding with this id could not be updated: it is missing or retired. */
      const notActive = Effect.fn("Miners.notActive")(function* (id: string) {
        const sql = yield* SqlClient.SqlClient
        const rows = yield* sql`SELECT 1 FROM miners WHERE id = ${id}`
        return rows.length === 0
          ? new NotFound({ message: `no miner ${id}` })
          : new Conflict({ message: `miner ${id} is retired` })
      })
      const change = Effect.fn("Miners.change")(function* (tenantId: string, id: string, patch: ChangeMiner) {
        const sql = yield* SqlClient.SqlClient
        const [row] = yield* sql<MinerRow>`
          UPDATE miners SET
            count = coalesce(${patch.count ?? null}::integer, count),
            site = coalesce(${patch.site ?? null}::text, site),
            power_price_usd_per_kwh = coalesce(${patch.powerPriceUsdPerKwh ?? null}::numeric,
                                               power_price_usd_per_kwh),
            updated_at = now()
          WHERE id = ${id} AND status = 'active'
          RETURNING ${columns(sql)}`
        if (!row) return yield* Effect.flatMap(notActive(id), Effect.fail)
        yield* outbox
          .append(minerTopic, [
            {
              type: "MinerChanged",
              aggregateId: id,
              tenantId,
              payload: {
                minerId: id,
                userId: row.userId,
                modelId: row.modelId,
                count: row.count,
                site: row.site,
                powerPriceUsdPerKwh: row.powerPriceUsdPerKwh,
              },
            },
          ])
          .pipe(Effect.catchTags({ OutboxOutsideTransaction: Effect.die, ParseError: Effect.die }))
        return row
      })
      const retire = Effect.fn("Miners.retire")(function* (tenantId: string, id: string) {
        const sql = yield* SqlClient.SqlClient
        const [row] = yield* sql<MinerRow>`
          UPDATE miners SET status = 'retired', updated_at = now()
          WHERE id = ${id} AND status = 'active'
          RETURNING ${columns(sql)}`
        if (!row) return yield* Effect.flatMap(notActive(id), Effect.fail)
        yield* outbox
          .append(minerTopic, [
            { type: "MinerRetired", aggregateId: id, tenantId, payload: { minerId: id, userId: row.userId } },
          ])
          .pipe(Effect.catchTags({ OutboxOutsideTransaction: Effect.die, ParseError: Effect.die }))
        return row
      })
      const get = Effect.fn("Miners.get")(function* (id: string) {
        const sql = yield* SqlClient.SqlClient
        const rows = yield* sql<MinerRow>`SELECT ${columns(sql)} FROM miners WHERE id = ${id}`
        return Option.fromNullable(rows[0])
      })
      const list = Effect.fn("Miners.list")(function* (userId: string | undefined) {
        const sql = yield* SqlClient.SqlClient
        const byUser = userId === undefined ? sql`` : sql`WHERE user_id = ${userId}`
        return yield* sql<MinerRow>`SELECT ${columns(sql)} FROM miners ${byUser}
          ORDER BY created_at, id LIMIT ${listLimit}`
      })
      return Miners.of({ add, change, retire, get, list })
    }),
  )
}
