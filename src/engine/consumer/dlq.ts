/**
 * Dead letters: the failed record kept whole in `event_dlq`, and the replay protocol shared with
 * `bun run dlq replay`. The CLI re-produces a row's record with `x-replay-group` and
 * `x-replay-dlq-id`; the consumer of that group marks the row `replayed` in the same transaction as
 * the effects, or — when it fails again — updates that row (never a new one) and keeps the earlier
 * failure in `history`. These writes run as the connecting role: a malformed record may have no tenant.
 *
 * A record has at most one open (not yet replayed) entry (migration 041): its event id within the
 * group, or — without a usable event id — its topic, partition and offset. Delivered again, it
 * counts a repeat on that entry (`occurrences`, `last_failed_at`, the latest error); two members
 * dead-lettering it at once (a rebalance) meet in the unique index and count two.
 */
import { SqlClient } from "@effect/sql"
import { Effect } from "effect"

export const replayGroupHeader = "x-replay-group"
export const replayDlqIdHeader = "x-replay-dlq-id"

export interface DeadLetter {
  readonly group: string
  readonly topic: string
  readonly partition: number
  readonly offset: string
  readonly key: string | null
  readonly value: string | null
  readonly headers: Readonly<Record<string, string>>
  readonly eventId: string | null
  readonly eventType: string | null
  readonly tenantId: string | null
  readonly errorTag: string
  readonly errorMessage: string
  readonly attempts: number
}

export interface ReplayFailure {
  readonly errorTag: string
  readonly errorMessage: string
  readonly attempts: number
}

export interface Written {
  readonly id: string
  /** 1 for a new entry; more when the record's open entry counted this failure as a repeat. */
  readonly occurrences: number
}

const repeat = `DO UPDATE SET occurrences = event_dlq.occurrences + 1, last_failed_at = now(),
  error_tag = excluded.error_tag, error_message = excluded.error_message, attempts = excluded.attempts`

export const writeDeadLetter = Effect.fn("Dlq.write")(function* (d: DeadLetter) {
  const sql = yield* SqlClient.SqlClient
  // The conflict targets repeat the partial indexes' columns and predicates, as inference requires.
  const identity =
    d.eventId === null
      ? `(consumer_group, topic, partition, "offset") WHERE event_id IS NULL AND replay_status <> 'replayed'`
      : `(consumer_group, event_id) WHERE event_id IS NOT NULL AND replay_status <> 'replayed'`
  const rows = yield* sql<Written>`
    INSERT INTO event_dlq ${sql.insert({
      event_id: d.eventId,
      consumer_group: d.group,
      topic: d.topic,
      partition: d.partition,
      offset: d.offset,
      key: d.key,
      value: d.value,
      headers: JSON.stringify(d.headers),
      event_type: d.eventType,
      error_tag: d.errorTag,
      error_message: d.errorMessage,
      attempts: d.attempts,
      tenant_id: d.tenantId,
    })}
    ON CONFLICT ${sql.literal(identity)} ${sql.literal(repeat)}
    RETURNING id::text, occurrences`
  return rows[0]!
})

/**
 * Deliveries the inbox claim skipped because their record's entry is open: one repeat each (an id
 * may come more than once). Run after the claim's transaction, as the connecting role, so that a
 * member's transaction only reads the DLQ.
 */
export const countRepeats = Effect.fn("Dlq.countRepeats")(function* (entryIds: ReadonlyArray<string>) {
  const sql = yield* SqlClient.SqlClient
  const counts = new Map<string, number>()
  for (const id of entryIds) counts.set(id, (counts.get(id) ?? 0) + 1)
  const repeats = sql.csv([...counts].map(([id, n]) => sql`(${id}::bigint, ${n}::int)`))
  yield* sql`UPDATE event_dlq SET occurrences = occurrences + r.n, last_failed_at = now()
    FROM (VALUES ${repeats}) AS r (id, n) WHERE event_dlq.id = r.id`
})

/**
 * SQL condition: another open entry has the identity of `row` (an alias of `event_dlq`). A replayed
 * row must stay closed while one does, or the unique rule would refuse the change.
 */
export const openTwinOf = (row: string) => `EXISTS (SELECT 1 FROM event_dlq twin
  WHERE twin.consumer_group = ${row}.consumer_group AND twin.id <> ${row}.id
    AND twin.replay_status <> 'replayed'
    AND (twin.event_id = ${row}.event_id
      OR (twin.event_id IS NULL AND ${row}.event_id IS NULL AND twin.topic = ${row}.topic
        AND twin.partition = ${row}.partition AND twin."offset" = ${row}."offset")))`

/** The replayed event is done (effects committed now, or long ago): close the DLQ row. */
export const markReplayed = Effect.fn("Dlq.markReplayed")(function* (group: string, dlqId: string) {
  const sql = yield* SqlClient.SqlClient
  yield* sql`
    UPDATE event_dlq SET replay_status = 'replayed', replayed_at = now()
    WHERE id = ${dlqId} AND consumer_group = ${group}`
})

/**
 * The replay failed again: update the same row, folding its previous failure into `history`. False
 * when there is no such row, or it was replayed already and a fresh failure opened another entry
 * since: the failure then belongs to that one.
 */
export const markReplayFailed = Effect.fn("Dlq.markReplayFailed")(function* (
  group: string,
  dlqId: string,
  failure: ReplayFailure,
) {
  const sql = yield* SqlClient.SqlClient
  const rows = yield* sql`
    UPDATE event_dlq SET
      replay_status = 'failed',
      last_replay_error = ${`${failure.errorTag}: ${failure.errorMessage}`},
      history = history || jsonb_build_array(jsonb_build_object(
        'error_tag', error_tag, 'error_message', error_message,
        'attempts', attempts, 'failed_at', failed_at)),
      error_tag = ${failure.errorTag},
      error_message = ${failure.errorMessage},
      attempts = ${failure.attempts},
      failed_at = now(),
      last_failed_at = now()
    WHERE id = ${dlqId} AND consumer_group = ${group}
      AND NOT (replay_status = 'replayed' AND ${sql.literal(openTwinOf("event_dlq"))})
    RETURNING id`
  return rows.length > 0
})

/**
 * The DLQ rate: the share of a group's events that ended dead-lettered rather than processed,
 * `dlq / (processed + dlq)`, null when neither happened. `dlq stats`, `/api/health` and `/metrics`
 * all show this figure.
 */
export const dlqRate = (dlq: number, processed: number): number | null =>
  dlq + processed > 0 ? dlq / (processed + dlq) : null

export interface GroupWindow {
  readonly consumerGroup: string
  /** Entries dead-lettered in the window. */
  readonly dlq: number
  /** Events processed in the window (an `event_inbox` row is written exactly when a group processed one). */
  readonly processed: number
}

/** Per group, what was dead-lettered and what was processed within the last `hours`. */
export const dlqWindow = Effect.fn("Dlq.window")(function* (hours: number) {
  const sql = yield* SqlClient.SqlClient
  const since = sql`now() - make_interval(secs => ${hours * 3600})`
  return yield* sql<GroupWindow>`WITH d AS (
      SELECT consumer_group, count(*)::int AS n FROM event_dlq WHERE failed_at >= ${since} GROUP BY 1),
    p AS (
      SELECT consumer_group, count(*)::int AS n FROM event_inbox WHERE processed_at >= ${since} GROUP BY 1)
    SELECT coalesce(d.consumer_group, p.consumer_group) AS "consumerGroup",
      coalesce(d.n, 0) AS dlq, coalesce(p.n, 0) AS processed
    FROM d FULL JOIN p ON p.consumer_group = d.consumer_group ORDER BY 1`
})
