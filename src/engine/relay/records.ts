import type { KafkaTopicMessages } from "../../platform/kafka.ts"
import { type OutboxRecord, recordTopic, toKafkaMessage } from "../record.ts"

/** An `event_outbox` row as both relays receive it: `payload` already parsed from jsonb. */
export interface OutboxRow {
  readonly id: string
  readonly aggregatetype: string
  readonly aggregateid: string
  readonly type: string
  readonly payload: unknown
  readonly tenant_id: string
  readonly traceparent: string | null
  /** Absent from a WAL insert decoded with a relation from before migration 045. */
  readonly event_version?: number | string | null
}

/**
 * Both relays re-serialise the parsed jsonb compactly, so WAL and polling produce the same bytes —
 * the bytes Debezium's `table.expand.json.payload` produces too.
 */
export const recordOf = (row: OutboxRow): OutboxRecord => ({
  id: row.id,
  aggregatetype: row.aggregatetype,
  aggregateid: row.aggregateid,
  type: row.type,
  payload: JSON.stringify(row.payload),
  tenantId: row.tenant_id,
  traceparent: row.traceparent,
  eventVersion: Number(row.event_version ?? 1),
})

/** Groups records per topic for one `sendBatch`, keeping their order within each topic. */
export const topicMessagesOf = (records: ReadonlyArray<OutboxRecord>): Array<KafkaTopicMessages> => {
  const byTopic = new Map<string, KafkaTopicMessages>()
  for (const r of records) {
    const topic = recordTopic(r)
    let entry = byTopic.get(topic)
    if (!entry) {
      entry = { topic, messages: [] }
      byTopic.set(topic, entry)
    }
    entry.messages.push(toKafkaMessage(r))
  }
  return [...byTopic.values()]
}
