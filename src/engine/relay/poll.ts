/**
 * The polling relay. It publishes a row only once no older transaction can still commit behind
 * it: rows with `txid < pg_snapshot_xmin(pg_current_snapshot())`, in (txid, seq) order. A clock or
 * sequence cursor would skip the events of a long transaction that commits after younger ones;
 * this never does — it waits for the old transaction instead. NOTIFY only wakes it early (after
 * the linger, so a burst of commits is one round).
 *
 * Rows below the delivered watermark (delivered.ts) were sent by a WAL relay, which marks nothing,
 * and are skipped. Each round advances the watermark as it marks its rows, so a WAL relay resuming
 * a slot from before this run skips what this one sent.
 */
import { SqlClient } from "@effect/sql"
import { Effect, Queue } from "effect"
import type { KafkaProducer } from "../../platform/kafka.ts"
import type { RelayConfig } from "./config.ts"
import { advanceDelivered, deliveredBelow } from "./delivered.ts"
import { relayError } from "./errors.ts"
import { deliver } from "./publisher.ts"
import { type OutboxRow, recordOf } from "./records.ts"
import { setWakeupTrigger, wakeups } from "./wakeup.ts"

export const pollRelay = (config: RelayConfig, producer: KafkaProducer) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const wake = yield* wakeups(config)
    yield* setWakeupTrigger(true)

    const visibleBatch = sql<OutboxRow & { readonly txid_text: string; readonly xmin: string }>`
      SELECT id, aggregatetype, aggregateid, type, payload, tenant_id, traceparent, event_version,
             txid::text AS txid_text, pg_snapshot_xmin(pg_current_snapshot())::text AS xmin
      FROM event_outbox
      WHERE published_at IS NULL AND txid >= ${deliveredBelow(sql)}
        AND txid < pg_snapshot_xmin(pg_current_snapshot())
      ORDER BY txid, seq
      LIMIT ${config.batchSize}`

    const round = Effect.gen(function* () {
      const rows = yield* visibleBatch
      if (rows.length === 0) return 0
      const ids = rows.map((r) => r.id)
      // Every row older than xmin is visible to this query; not marked and not below the watermark,
      // it is in this batch — all of them when the batch is not full, else those below its last txid.
      const last = rows[rows.length - 1]!
      const below = rows.length < config.batchSize ? last.xmin : last.txid_text
      yield* deliver(
        producer,
        rows.map(recordOf),
        sql`UPDATE event_outbox SET published_at = now() WHERE id IN ${sql.in(ids)}`.pipe(
          Effect.zipRight(advanceDelivered(below, `${config.slot} (poll)`)),
        ),
      )
      return rows.length
    })

    yield* Effect.logInfo(`relay active: mode=poll slot=${config.slot}`)
    return yield* round.pipe(
      Effect.mapError(relayError("polling the outbox")),
      Effect.tap((n) =>
        n < config.batchSize
          ? Queue.take(wake).pipe(
              Effect.timeout(config.pollInterval),
              Effect.ignore,
              // Let a burst of commits gather into one round (see RelayConfig.linger).
              Effect.zipRight(Effect.sleep(config.linger)),
            )
          : Effect.void,
      ),
      Effect.forever,
    )
  }).pipe(Effect.withSpan("Relay.poll"))
