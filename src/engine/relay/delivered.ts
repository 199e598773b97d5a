/**
 * The delivered watermark (migration 040): every `event_outbox` row with `txid < below` is in
 * Kafka. A WAL relay marks no rows, so this is how what it delivered becomes known to the readers
 * that would otherwise send it again: the polling relay, a new slot's catch-up and a WAL relay
 * resuming a slot whose position predates a polling run all skip rows below it. A mode switch or a
 * re-created slot then sends again only what was delivered since the watermark last moved (the
 * in-flight window), not everything still in retention.
 *
 * It belongs to the outbox, not to a relay: relays of either mode and any name advance the one row
 * with what Kafka acknowledged to them, and it never moves back, so true claims only combine. The
 * row counts one cluster's transaction ids, so it is read only in the cluster that wrote it: a dump
 * restored elsewhere, where xids start again far below it, would otherwise skip every new row. It
 * claims nothing Kafka has not acknowledged: a relay killed at any point leaves it at its last
 * claim, and the next relay sends the rest again — a duplicate, never a loss. A Debezium connector
 * streams through a slot of its own and advances nothing; a relay of ours started after it sends
 * what the outbox still holds again, as before.
 */
import { SqlClient, type SqlError } from "@effect/sql"
import { Duration, Effect, Schedule } from "effect"
import { lsnToBigInt } from "./lsn.ts"

/** The cluster whose transaction ids a watermark counts: only its own row is read (migration 040). */
const thisCluster = (sql: SqlClient.SqlClient) => sql`(SELECT system_identifier FROM pg_control_system())`

/** The watermark for use inside a query, read in that query's snapshot; 0 until a relay claims. */
export const deliveredBelow = (sql: SqlClient.SqlClient) =>
  sql`coalesce((SELECT below FROM relay_delivered WHERE system_identifier = ${thisCluster(sql)}), '0'::xid8)`

export const readDeliveredBelow = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  const [row] = yield* sql<{ below: string }>`SELECT ${deliveredBelow(sql)}::text AS below`
  return BigInt(row?.below ?? 0)
})

/** Claims that every row with `txid < below` is in Kafka; a lower claim than the current one changes nothing. */
export const advanceDelivered = (below: string, by: string) =>
  Effect.flatMap(
    SqlClient.SqlClient,
    (sql) => sql`
      INSERT INTO relay_delivered (system_identifier, below, advanced_by)
      VALUES (${thisCluster(sql)}, ${below}::xid8, ${by})
      ON CONFLICT (system_identifier) DO UPDATE
        SET below = EXCLUDED.below, advanced_by = EXCLUDED.advanced_by, updated_at = now()
        WHERE relay_delivered.below < EXCLUDED.below`,
  ).pipe(Effect.asVoid, Effect.withSpan("Relay.advanceDelivered"))

/** What the WAL relay has seen Kafka acknowledge, read by its watermark loop. */
export interface WalDelivered {
  /** Every commit whose record ends at or before this WAL position is in Kafka (0: none known yet). */
  readonly through: () => bigint
  /** Events Kafka acknowledged so far in this session. */
  readonly events: () => number
}

interface Sample {
  readonly lsn: bigint
  readonly xmin: string
}

/**
 * How often the WAL relay samples and advances while events flow. The watermark trails what was
 * delivered by about this much, which is what a switch sends again.
 */
const walSampleInterval = Duration.millis(200)

/**
 * WAL mode derives the watermark the way retention used to derive "acknowledged": a sample taken
 * at WAL position L with snapshot xmin X — every transaction older than X had already committed
 * or aborted, so its commit record ends before L. Once this session has everything up to L in
 * Kafka (its catch-up, if it made the slot, is done before it streams; what precedes its start
 * position was confirmed before), every row with `txid < X` is there too. After the first, samples
 * are taken only after more events were delivered: each advance is a transaction of its own, which
 * moves xmin and would otherwise call for the next one, so an idle relay would write forever.
 *
 * `loop` runs forever; `settle` makes the claims the samples so far allow (for a draining relay).
 */
export const walWatermark = (relay: string, delivered: WalDelivered) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const samples: Array<Sample> = []
    // The first round samples in any case: what the catch-up, or the sessions before this one,
    // delivered is claimed once this session has streamed past it.
    let sampledAfter = -1

    const settle: Effect.Effect<void, SqlError.SqlError, SqlClient.SqlClient> = Effect.suspend(() => {
      const through = delivered.through()
      let covered: Sample | undefined
      while (samples[0] && samples[0].lsn <= through) covered = samples.shift()
      return covered ? advanceDelivered(covered.xmin, relay) : Effect.void
    })

    const sample = Effect.gen(function* () {
      const events = delivered.events()
      if (events === sampledAfter) return
      const [row] = yield* sql<{ lsn: string; xmin: string }>`
        SELECT pg_current_wal_insert_lsn()::text AS lsn, pg_snapshot_xmin(pg_current_snapshot())::text AS xmin`
      sampledAfter = events
      if (row) samples.push({ lsn: lsnToBigInt(row.lsn), xmin: row.xmin })
    })

    const loop = settle.pipe(
      Effect.zipRight(sample),
      Effect.catchAll((e) => Effect.logWarning(`delivered watermark round failed: ${e.message}`)),
      Effect.repeat(Schedule.spaced(walSampleInterval)),
    )
    return { loop, settle }
  })
