/**
 * `Outbox.append`: encodes typed events with their topic's Schemas (each event type's latest
 * version, whose number the row records in `event_version`) and inserts them into `event_outbox`
 * inside the caller's SQL transaction, so the business write and its events commit or roll back
 * together. Called outside `sql.withTransaction` it fails with
 * `OutboxOutsideTransaction` instead of autocommitting.
 */
import { SqlClient, type SqlError } from "@effect/sql"
import { Context, Effect, Layer, Option, type ParseResult, Schema } from "effect"
import type { EventType, PayloadOf, Topic } from "./topic.ts"

export class OutboxOutsideTransaction extends Schema.TaggedError<OutboxOutsideTransaction>()(
  "OutboxOutsideTransaction",
  {},
) {
  override get message() {
    return "Outbox.append must run inside sql.withTransaction: events commit with the business write or not at all"
  }
}

export interface NewEvent<T extends Topic, K extends EventType<T>> {
  readonly type: K
  readonly aggregateId: string
  readonly tenantId: string
  readonly payload: PayloadOf<T, K>
  /** Defaults to a fresh UUIDv7 (time-ordered). */
  readonly id?: string
  readonly traceparent?: string
}

export type AppendError = OutboxOutsideTransaction | ParseResult.ParseError | SqlError.SqlError

export class Outbox extends Context.Tag("hashinsight/engine/Outbox")<
  Outbox,
  {
    /** Appends one or many events of one topic; returns their event ids in order. */
    readonly append: <T extends Topic, K extends EventType<T>>(
      topic: T,
      events: ReadonlyArray<NewEvent<T, K>>,
    ) => Effect.Effect<ReadonlyArray<string>, AppendError, SqlClient.SqlClient>
  }
>() {
  static readonly layer = Layer.succeed(
    Outbox,
    Outbox.of({
      append: Effect.fn("Outbox.append")(function* <T extends Topic, K extends EventType<T>>(
        topic: T,
        events: ReadonlyArray<NewEvent<T, K>>,
      ) {
        const tx = yield* Effect.serviceOption(SqlClient.TransactionConnection)
        if (Option.isNone(tx)) return yield* new OutboxOutsideTransaction()
        if (events.length === 0) return []
        const sql = yield* SqlClient.SqlClient
        const rows = yield* Effect.forEach(events, (e) =>
          Effect.map(Schema.encode(topic.events[e.type]!)(e.payload), (encoded) => ({
            id: e.id ?? Bun.randomUUIDv7(),
            aggregatetype: topic.aggregatetype,
            aggregateid: e.aggregateId,
            type: e.type,
            payload: JSON.stringify(encoded),
            tenant_id: e.tenantId,
            traceparent: e.traceparent ?? null,
            event_version: topic.versions[e.type]!.version,
          })),
        )
        yield* sql`INSERT INTO event_outbox ${sql.insert(rows)}`
        return rows.map((r) => r.id)
      }),
    }),
  )
}
