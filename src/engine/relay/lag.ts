/** How far behind the relays are, as Effects a health check can call. */
import { SqlClient } from "@effect/sql"
import { Effect, Option } from "effect"

export interface SlotLag {
  /** WAL bytes the slot still holds back: written but not yet acknowledged by the relay. */
  readonly bytes: number
  /** Whether a relay is streaming from the slot right now. */
  readonly active: boolean
}

/** The WAL relay's lag; `None` when the slot does not exist (yet). */
export const slotLag = Effect.fn("Relay.slotLag")(function* (slot: string) {
  const sql = yield* SqlClient.SqlClient
  const rows = yield* sql<{ bytes: number | string; active: boolean }>`
    SELECT greatest(coalesce(pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn), 0), 0)::float8 AS bytes, active
    FROM pg_replication_slots WHERE slot_name = ${slot}`
  return Option.map(
    Option.fromNullable(rows[0]),
    (r): SlotLag => ({ bytes: Number(r.bytes), active: r.active }),
  )
})

export interface OutboxBacklog {
  readonly unpublished: number
  /** Age of the oldest unpublished event, 0 when there is none. */
  readonly oldestSeconds: number
}

/** The polling relay's lag: events not yet marked published. */
export const outboxBacklog = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  const rows = yield* sql<{ unpublished: number | string; oldest_seconds: number | string }>`
    SELECT count(*)::int AS unpublished,
           coalesce(extract(epoch FROM now() - min(created_at)), 0)::float8 AS oldest_seconds
    FROM event_outbox WHERE published_at IS NULL`
  const r = rows[0]
  return {
    unpublished: Number(r?.unpublished ?? 0),
    oldestSeconds: Number(r?.oldest_seconds ?? 0),
  } satisfies OutboxBacklog
}).pipe(Effect.withSpan("Relay.outboxBacklog"))
