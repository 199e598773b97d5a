/**
 * A dead-letter entry as the operator tools see it: one `event_dlq` row (migrations 000, 005, 041),
 * decoded with a Schema so a column that changes shape fails loudly instead of printing garbage.
 */
import { Schema } from "effect"

export const replayStatuses = ["pending", "replaying", "replayed", "failed"] as const
export const ReplayStatus = Schema.Literal(...replayStatuses)
export type ReplayStatus = typeof ReplayStatus.Type

/** pg returns int8 as text; DLQ ids stay far below 2^53. */
const Int8 = Schema.NumberFromString

export const DlqEntry = Schema.Struct({
  id: Int8,
  eventId: Schema.NullOr(Schema.String),
  consumerGroup: Schema.String,
  topic: Schema.String,
  partition: Schema.Number,
  offset: Schema.String,
  key: Schema.NullOr(Schema.String),
  value: Schema.NullOr(Schema.String),
  headers: Schema.Record({ key: Schema.String, value: Schema.String }),
  eventType: Schema.NullOr(Schema.String),
  errorTag: Schema.String,
  errorMessage: Schema.String,
  attempts: Schema.Number,
  tenantId: Schema.NullOr(Schema.String),
  failedAt: Schema.DateFromSelf,
  /** How many failed deliveries of the record this entry stands for: 1, plus each repeat. */
  occurrences: Schema.Number,
  lastFailedAt: Schema.DateFromSelf,
  replayStatus: ReplayStatus,
  replayedAt: Schema.NullOr(Schema.DateFromSelf),
  replayCount: Schema.Number,
  lastReplayError: Schema.NullOr(Schema.String),
  history: Schema.Array(Schema.Unknown),
})
export type DlqEntry = typeof DlqEntry.Type

/** The select list matching `DlqEntry`, shared by every query that returns whole entries. */
export const entryColumns = `id, event_id AS "eventId", consumer_group AS "consumerGroup", topic, partition,
  "offset"::text AS "offset", key, value, headers, event_type AS "eventType", error_tag AS "errorTag",
  error_message AS "errorMessage", attempts, tenant_id AS "tenantId", failed_at AS "failedAt",
  occurrences, last_failed_at AS "lastFailedAt", replay_status AS "replayStatus", replayed_at AS "replayedAt", replay_count AS "replayCount",
  last_replay_error AS "lastReplayError", history`

/** The stored value is the record's payload as JSON text; show it parsed when it parses. */
export const decodedValue = (entry: DlqEntry): unknown => {
  if (entry.value === null) return null
  try {
    return JSON.parse(entry.value)
  } catch {
    return entry.value
  }
}
