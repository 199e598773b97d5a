/**
 * The Kafka record format (contract), shared by the relay that writes it and the consumers that read
 * it — identical to Debezium's outbox event router with `route.topic.replacement=events.${routedByValue}`,
 * `table.expand.json.payload=true` and `type`/`tenant_id` placed as headers:
 * topic `events.<aggregatetype>`, key = aggregateid, value = payload JSON,
 * headers `id`, `eventType`, `tenantId`, `eventVersion` (+ `traceparent`). A record without
 * `eventVersion` (written before versions existed) is version 1.
 */
import { Schema } from "effect"
import type { KafkaHeaders, KafkaMessage } from "../platform/kafka.ts"
import { topicNameOf } from "./topic.ts"

/** An outbox row as the relays read it. */
export interface OutboxRecord {
  readonly id: string
  readonly aggregatetype: string
  readonly aggregateid: string
  readonly type: string
  /** The payload as JSON text (as stored in jsonb). */
  readonly payload: string
  readonly tenantId: string
  readonly traceparent: string | null
  /** The payload's schema version (`event_outbox.event_version`). */
  readonly eventVersion: number
}

export const recordTopic = (r: OutboxRecord) => topicNameOf(r.aggregatetype)

/** The payload's schema version; a record without it (written before versions existed) is version 1. */
export const versionHeader = "eventVersion"

export const toKafkaMessage = (r: OutboxRecord): KafkaMessage => {
  const headers: KafkaHeaders = {
    id: r.id,
    eventType: r.type,
    tenantId: r.tenantId,
    [versionHeader]: String(r.eventVersion),
  }
  if (r.traceparent) headers.traceparent = r.traceparent
  return { key: r.aggregateid, value: r.payload, headers }
}

/** Headers a consumer needs before it can do anything with a record. */
export class MissingHeader extends Schema.TaggedError<MissingHeader>()("MissingHeader", {
  header: Schema.String,
}) {
  override get message() {
    return `record has no '${this.header}' header`
  }
}

export interface RecordMeta {
  readonly eventId: string
  readonly eventType: string
  readonly tenantId: string
  readonly traceparent: string | undefined
}

const headerText = (headers: KafkaHeaders | undefined, name: string): string | undefined => {
  const v = headers?.[name]
  if (v === undefined || v === null) return undefined
  const s = Array.isArray(v) ? v[0]?.toString() : v.toString()
  return s === "" ? undefined : s
}

/** Reads the contract headers; the first missing one is reported. */
export const readRecordMeta = (headers: KafkaHeaders | undefined): RecordMeta | MissingHeader => {
  const eventId = headerText(headers, "id")
  if (!eventId) return new MissingHeader({ header: "id" })
  const eventType = headerText(headers, "eventType")
  if (!eventType) return new MissingHeader({ header: "eventType" })
  const tenantId = headerText(headers, "tenantId")
  if (!tenantId) return new MissingHeader({ header: "tenantId" })
  return { eventId, eventType, tenantId, traceparent: headerText(headers, "traceparent") }
}

/** All headers as text, for storing a failed record whole. */
export const headersAsText = (headers: KafkaHeaders | undefined): Record<string, string> => {
  const out: Record<string, string> = {}
  for (const [k, v] of Object.entries(headers ?? {})) {
    if (v === undefined) continue
    out[k] = Array.isArray(v) ? v.map((x) => x.toString()).join(",") : v.toString()
  }
  return out
}
