/**
 * Retention of `event_outbox`: rows leave the table only once Kafka has them and they are older
 * than the retention period. Deletes run in bounded batches so they never hold long locks.
 */
import { SqlClient, type SqlError } from "@effect/sql"
import { Duration, Effect, Schedule } from "effect"
import type { RelayConfig } from "./config.ts"
import { lsnToBigInt } from "./lsn.ts"

const deleteBatch = 10_000

const deleteWhile = (step: Effect.Effect<ReadonlyArray<{ n: number }>, SqlError.SqlError>) =>
  step.pipe(
    Effect.map((rows) => rows[0]?.n ?? 0),
    Effect.repeat({ while: (n) => n === deleteBatch }),
  )

/** Poll mode: rows marked published more than `retention` ago. */
const deletePublished = (retention: Duration.Duration) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const seconds = Duration.toSeconds(retention)
    yield* deleteWhile(sql<{ n: number }>`
      WITH d AS (
        DELETE FROM event_outbox WHERE id IN (
          SELECT id FROM event_outbox
          WHERE published_at < now() - make_interval(secs => ${seconds}) LIMIT ${deleteBatch})
        RETURNING 1)
      SELECT count(*)::int AS n FROM d`)
  })

interface WalSample {
  readonly lsn: string
  readonly xmin: string
}

/**
 * WAL mode marks nothing, so "acknowledged" is derived: at a sample taken at WAL position L, every
 * transaction older than the oldest one still running (xmin) had already committed or aborted, so
 * its commit record lies before L. Once the slot has confirmed L, rows with `txid < xmin` are in
 * Kafka and may go when old enough.
 */
const deleteAcknowledged = (config: RelayConfig, samples: Array<WalSample>) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const [sample] = yield* sql<WalSample>`
      SELECT pg_current_wal_insert_lsn()::text AS lsn, pg_snapshot_xmin(pg_current_snapshot())::text AS xmin`
    if (sample) samples.push(sample)
    const [slot] = yield* sql<{ lsn: string | null }>`
      SELECT confirmed_flush_lsn::text AS lsn FROM pg_replication_slots WHERE slot_name = ${config.slot}`
    if (!slot?.lsn) return
    const confirmed = lsnToBigInt(slot.lsn)
    let covered: WalSample | undefined
    while (samples[0] && lsnToBigInt(samples[0].lsn) <= confirmed) covered = samples.shift()
    if (!covered) return
    const seconds = Duration.toSeconds(config.retention)
    yield* deleteWhile(sql<{ n: number }>`
      WITH d AS (
        DELETE FROM event_outbox WHERE id IN (
          SELECT id FROM event_outbox
          WHERE txid < ${covered.xmin}::xid8 AND created_at < now() - make_interval(secs => ${seconds})
          LIMIT ${deleteBatch})
        RETURNING 1)
      SELECT count(*)::int AS n FROM d`)
  })

/** Runs retention for the relay's mode on its interval, forever; a failed round is logged and retried. */
export const retentionLoop = (config: RelayConfig) => {
  const samples: Array<WalSample> = []
  const round =
    config.mode === "poll" ? deletePublished(config.retention) : deleteAcknowledged(config, samples)
  return round.pipe(
    Effect.catchAll((e) => Effect.logWarning(`outbox retention round failed: ${e.message}`, e.cause)),
    Effect.repeat(Schedule.spaced(config.retentionInterval)),
    Effect.withSpan("Relay.retention"),
  )
}
