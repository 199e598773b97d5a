/** How far behind the relays are, as Effects a health check can call. */
import { SqlClient } from "@effect/sql"
import { Effect, Option } from "effect"
import { deliveredBelow } from "./delivered.ts"

export interface SlotLag {
  /** The slot measured: the relay's own, or another pgoutput slot of the database (Debezium's). */
  readonly slot: string
  /** WAL bytes the slot still holds back: written but not yet acknowledged by its reader. */
  readonly bytes: number
  /** Whether a reader is streaming from the slot right now. */
  readonly active: boolean
  /** How far its reader is behind in time: `pg_stat_replication`'s flush lag, 0 when caught up or idle. */
  readonly seconds: number
}

/**
 * The WAL relay's lag from `slot`; when that slot does not exist, from the database's other
 * `pgoutput` slot — the Debezium connector (`connectors/outbox-connector.json`) streams the outbox
 * through a slot of its own and marks nothing published, so without this a Debezium deployment's
 * outbox looked like a poll relay that never ran. Several others: a streaming one first, then the
 * one furthest behind. Only this database's slots: another database's slot of the same name is
 * another relay's. `None` when the database has no such slot (poll mode, or not started yet).
 */
export const slotLag = Effect.fn("Relay.slotLag")(function* (slot: string) {
  const sql = yield* SqlClient.SqlClient
  const rows = yield* sql<{ slot: string; bytes: number | string; active: boolean; seconds: number }>`
    SELECT slot_name AS slot, active,
           greatest(coalesce(pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn), 0), 0)::float8 AS bytes,
           coalesce((SELECT extract(epoch FROM r.flush_lag) FROM pg_stat_replication r WHERE r.pid = active_pid),
                    0)::float8 AS seconds
    FROM pg_replication_slots
    WHERE database = current_database()
      AND (slot_name = ${slot} OR (slot_type = 'logical' AND plugin = 'pgoutput'))
    ORDER BY slot_name = ${slot} DESC, active DESC, bytes DESC
    LIMIT 1`
  return Option.map(
    Option.fromNullable(rows[0]),
    (r): SlotLag => ({ slot: r.slot, bytes: Number(r.bytes), active: r.active, seconds: Number(r.seconds) }),
  )
})

export interface OutboxBacklog {
  readonly unpublished: number
  /** Age of the oldest unpublished event, 0 when there is none. */
  readonly oldestSeconds: number
}

/**
 * The polling relay's lag: events not known to be in Kafka — neither marked published nor below the
 * delivered watermark (a WAL relay before it delivered those and marked nothing).
 */
export const outboxBacklog = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  const rows = yield* sql<{ unpublished: number | string; oldest_seconds: number | string }>`
    SELECT count(*)::int AS unpublished,
           coalesce(extract(epoch FROM now() - min(created_at)), 0)::float8 AS oldest_seconds
    FROM event_outbox WHERE published_at IS NULL AND txid >= ${deliveredBelow(sql)}`
  const r = rows[0]
  return {
    unpublished: Number(r?.unpublished ?? 0),
    oldestSeconds: Number(r?.oldest_seconds ?? 0),
  } satisfies OutboxBacklog
}).pipe(Effect.withSpan("Relay.outboxBacklog"))
