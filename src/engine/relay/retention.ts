/**
 * Retention of `event_outbox`: rows leave the table only once Kafka has them and they are older
 * than the retention period. Deletes run in bounded batches so they never hold long locks.
 */
import { SqlClient, type SqlError } from "@effect/sql"
import { Duration, Effect, Schedule } from "effect"
import type { RelayConfig } from "./config.ts"
import { deliveredBelow } from "./delivered.ts"

const deleteBatch = 10_000

const deleteWhile = (step: Effect.Effect<ReadonlyArray<{ n: number }>, SqlError.SqlError>) =>
  step.pipe(
    Effect.map((rows) => rows[0]?.n ?? 0),
    Effect.repeat({ while: (n) => n === deleteBatch }),
  )

/**
 * The same in both modes, since either may follow the other: rows a polling relay marked published
 * more than `retention` ago, and rows below the delivered watermark (a WAL relay's, which marks
 * nothing) created more than `retention` ago.
 */
const deleteDelivered = (retention: Duration.Duration) =>
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
    yield* deleteWhile(sql<{ n: number }>`
      WITH d AS (
        DELETE FROM event_outbox WHERE id IN (
          SELECT id FROM event_outbox
          WHERE published_at IS NULL AND txid < ${deliveredBelow(sql)}
            AND created_at < now() - make_interval(secs => ${seconds})
          LIMIT ${deleteBatch})
        RETURNING 1)
      SELECT count(*)::int AS n FROM d`)
  })

/** Runs retention on its interval, forever; a failed round is logged and retried. */
export const retentionLoop = (config: RelayConfig) =>
  deleteDelivered(config.retention).pipe(
    Effect.catchAll((e) => Effect.logWarning(`outbox retention round failed: ${e.message}`, e.cause)),
    Effect.repeat(Schedule.spaced(config.retentionInterval)),
    Effect.withSpan("Relay.retention"),
  )
