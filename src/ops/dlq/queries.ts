/**
 * Read side of the DLQ for operators: list entries by selection (oldest first, keyset paged by id),
 * fetch one whole entry, count what a selection matches. The operator role sees every tenant.
 */
import { SqlClient, type SqlError } from "@effect/sql"
import { Context, Effect, Layer, Option, type ParseResult, Schema } from "effect"
import { DlqEntry, entryColumns } from "./entry.ts"
import { type Selection, whereOf } from "./selection.ts"

export class DlqEntryNotFound extends Schema.TaggedError<DlqEntryNotFound>()("DlqEntryNotFound", {
  id: Schema.Number,
}) {
  override get message() {
    return `no DLQ entry with id ${this.id}`
  }
}

type QueryError = SqlError.SqlError | ParseResult.ParseError

export class DlqQueries extends Context.Tag("hashinsight/ops/DlqQueries")<
  DlqQueries,
  {
    readonly list: (selection: Selection, limit: number) => Effect.Effect<ReadonlyArray<DlqEntry>, QueryError>
    readonly get: (id: number) => Effect.Effect<DlqEntry, QueryError | DlqEntryNotFound>
    readonly count: (selection: Selection) => Effect.Effect<number, SqlError.SqlError>
  }
>() {
  static readonly layer = Layer.effect(
    DlqQueries,
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const decodeAll = Schema.decodeUnknown(Schema.Array(DlqEntry))
      return DlqQueries.of({
        list: Effect.fn("DlqQueries.list")(function* (selection, limit) {
          const rows = yield* sql`SELECT ${sql.literal(entryColumns)} FROM event_dlq
            WHERE ${whereOf(sql, selection)} ORDER BY id LIMIT ${limit}`
          return yield* decodeAll(rows)
        }),
        get: Effect.fn("DlqQueries.get")(function* (id) {
          const rows = yield* sql`SELECT ${sql.literal(entryColumns)} FROM event_dlq WHERE id = ${id}`
          const entry = Option.fromNullable((yield* decodeAll(rows))[0])
          if (Option.isNone(entry)) return yield* new DlqEntryNotFound({ id })
          return entry.value
        }),
        count: Effect.fn("DlqQueries.count")(function* (selection) {
          const rows = yield* sql<{ n: number }>`SELECT count(*)::int AS n FROM event_dlq
            WHERE ${whereOf(sql, selection)}`
          return rows[0]?.n ?? 0
        }),
      })
    }),
  )
}
