/**
 * Dead letters: the failed record kept whole in `event_dlq`, and the replay protocol shared with
 * `bun run dlq replay`. The CLI re-produces a row's record with `x-replay-group` and
 * `x-replay-dlq-id`; the consumer of that group marks the row `replayed` in the same transaction as
 * the effects, or — when it fails again — updates that row (never a new one) and keeps the earlier
 * failure in `history`. These writes run as the connecting role: a malformed record may have no tenant.
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

export const writeDeadLetter = Effect.fn("Dlq.write")(function* (d: DeadLetter) {
  const sql = yield* SqlClient.SqlClient
  const rows = yield* sql<{ id: string }>`
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
    RETURNING id`
  return String(rows[0]!.id)
})

/** The replayed event is done (effects committed now, or long ago): close the DLQ row. */
export const markReplayed = Effect.fn("Dlq.markReplayed")(function* (group: string, dlqId: string) {
  const sql = yield* SqlClient.SqlClient
  yield* sql`
    UPDATE event_dlq SET replay_status = 'replayed', replayed_at = now()
    WHERE id = ${dlqId} AND consumer_group = ${group}`
})

/** The replay failed again: update the same row, folding its previous failure into `history`. */
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
      failed_at = now()
    WHERE id = ${dlqId} AND consumer_group = ${group}
    RETURNING id`
  return rows.length > 0
})
