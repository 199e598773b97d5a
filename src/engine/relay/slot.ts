/**
 * The WAL relay's permanent slot. A new slot streams only what commits after it exists, so whoever
 * creates it also publishes what was already in the table (a catch-up, at-least-once: rows that
 * commit in between arrive twice) — what is not known to be in Kafka: rows neither marked
 * published nor below the delivered watermark. `relay_state.acked_lsn` is NULL from before the
 * slot exists until that catch-up is done, so a relay that dies half-way repeats it instead of
 * losing rows.
 */
import { SqlClient } from "@effect/sql"
import { Duration, Effect, Schedule } from "effect"
import type { KafkaProducer } from "../../platform/kafka.ts"
import type { RelayConfig } from "./config.ts"
import { deliveredBelow } from "./delivered.ts"
import { RelayError, relayError } from "./errors.ts"
import { deliver } from "./publisher.ts"
import { type OutboxRow, recordOf } from "./records.ts"

/** The cursor columns come as text (xid8 and bigint have no lossless JS number); aliased apart
 * from `txid`/`seq` so ORDER BY still sorts the numeric columns. */
type CatchUpRow = OutboxRow & { readonly txid_text: string; readonly seq_text: string }

/**
 * One REPEATABLE READ snapshot for the whole catch-up: a fresh snapshot per page would let a row
 * with a lower (txid, seq) than the cursor become visible behind it and be skipped, then arrive
 * late from the stream, after younger events of its aggregate. Everything that commits after this
 * snapshot commits after the slot exists and so comes from the stream.
 */
const catchUp = (config: RelayConfig, producer: KafkaProducer) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    yield* sql`SET TRANSACTION ISOLATION LEVEL REPEATABLE READ`
    let after: CatchUpRow | undefined
    let total = 0
    while (true) {
      const cursor = after
      const rows: ReadonlyArray<CatchUpRow> = yield* sql<CatchUpRow>`
        SELECT id, aggregatetype, aggregateid, type, payload, tenant_id, traceparent, event_version,
               txid::text AS txid_text, seq::text AS seq_text
        FROM event_outbox
        WHERE published_at IS NULL AND txid >= ${deliveredBelow(sql)}
          ${cursor ? sql`AND (txid, seq) > (${cursor.txid_text}::xid8, ${cursor.seq_text}::bigint)` : sql``}
        ORDER BY txid, seq
        LIMIT ${config.batchSize}`
      if (rows.length === 0) break
      yield* deliver(producer, rows.map(recordOf), Effect.void)
      total += rows.length
      after = rows[rows.length - 1]
    }
    return total
  }).pipe((self) => Effect.flatMap(SqlClient.SqlClient, (sql) => sql.withTransaction(self)))

/** Ensures the slot exists and the catch-up is done; returns the LSN to stream from. */
export const ensureSlot = (config: RelayConfig, producer: KafkaProducer) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const existing = yield* sql<{ lsn: string }>`
      SELECT confirmed_flush_lsn::text AS lsn FROM pg_replication_slots
      WHERE slot_name = ${config.slot} AND database = current_database()`
    if (existing.length === 0) {
      // Cleared first: a relay killed between the two statements would otherwise leave the new
      // slot beside the old slot's mark, and the next one would skip the catch-up and lose what
      // committed before the slot.
      yield* sql`UPDATE relay_state SET acked_lsn = NULL WHERE name = ${config.slot}`
      const [created] = yield* sql<{ lsn: string }>`
        SELECT lsn::text AS lsn FROM pg_create_logical_replication_slot(${config.slot}, 'pgoutput')`
      yield* Effect.logInfo(`created replication slot '${config.slot}' at ${created?.lsn}`)
    }
    const [state] = yield* sql<{ acked: string | null }>`
      SELECT acked_lsn::text AS acked FROM relay_state WHERE name = ${config.slot}`
    const [slot] = yield* sql<{ lsn: string }>`
      SELECT confirmed_flush_lsn::text AS lsn FROM pg_replication_slots WHERE slot_name = ${config.slot}`
    if (!slot) return yield* new RelayError({ reason: `slot '${config.slot}' vanished`, fatal: false })
    if (!state?.acked) {
      const n = yield* catchUp(config, producer)
      yield* sql`UPDATE relay_state SET acked_lsn = ${slot.lsn}::pg_lsn, updated_at = now() WHERE name = ${config.slot}`
      yield* Effect.logInfo(`catch-up for new slot '${config.slot}': ${n} events published`)
    }
    return slot.lsn
  }).pipe(Effect.mapError(relayError("preparing the replication slot")), Effect.withSpan("Relay.ensureSlot"))

/**
 * A predecessor that died may still own the slot for a moment (until PostgreSQL notices the
 * closed socket). We hold leadership, so after a grace period its walsender is terminated.
 */
export const awaitSlotFree = (slot: string) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const activePid = sql<{ pid: number | null }>`
      SELECT active_pid AS pid FROM pg_replication_slots WHERE slot_name = ${slot}`.pipe(
      Effect.map((rows) => rows[0]?.pid ?? null),
    )
    const free = activePid.pipe(
      Effect.repeat({ schedule: Schedule.spaced("100 millis"), until: (pid) => pid === null }),
    )
    const freed = yield* free.pipe(Effect.timeout(Duration.seconds(3)), Effect.option)
    if (freed._tag === "Some") return
    yield* Effect.logWarning(`slot '${slot}' still held by a previous relay; terminating its walsender`)
    yield* sql`SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots
               WHERE slot_name = ${slot} AND active_pid IS NOT NULL`
    yield* free.pipe(Effect.timeout(Duration.seconds(10)))
  }).pipe(Effect.mapError(relayError("waiting for the replication slot to be free")))
