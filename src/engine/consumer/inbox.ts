/**
 * The inbox: a `(consumer_group, event_id)` row written in the same transaction as the handler's
 * effects. Claiming inserts with ON CONFLICT DO NOTHING, so an event already done — or being done by
 * another member right now, whose row lock we then wait on — comes back as not claimed.
 *
 * An event waiting in the DLQ (an open entry, see dlq.ts) is not claimed either when Kafka delivers
 * it again: it stays there until it is replayed, and the runtime counts the delivery as a repeat on
 * its entry after the transaction (`countRepeats`). That check rides in the claim statement, so a
 * good event pays no round trip for it, only one probe of the index of open entries: a probe per
 * event (LATERAL … LIMIT 1), because for a big chunk the planner would rather scan the whole DLQ,
 * which grows with its backlog and history. The probe only reads: a member's transaction takes no
 * write lock on the DLQ, so an operator's lock on the table (CREATE INDEX) does not stop good
 * events, and a replay never finds an entry locked by a member (it would skip it). A replay claims
 * as usual: it is the way out of the DLQ.
 */
import { SqlClient } from "@effect/sql"
import { Effect } from "effect"

export interface InboxRow {
  readonly eventId: string
  readonly tenantId: string
  readonly eventType: string
  readonly topic: string
  readonly partition: number
  readonly offset: string
}

export interface Claimed {
  /** New: to be processed. */
  readonly claimed: ReadonlySet<string>
  /** Waiting in the DLQ, with the id of the open entry to count a repeat on: skipped. */
  readonly deadLettered: ReadonlyMap<string, string>
}

/**
 * Claims the events of one tenant as Kafka delivered them: those already done, or with an open DLQ
 * entry, are not claimed.
 */
export const claim = Effect.fn("Inbox.claim")(function* (group: string, rows: ReadonlyArray<InboxRow>) {
  const sql = yield* SqlClient.SqlClient
  const values = sql.csv(
    rows.map(
      (r) =>
        sql`(${r.eventId}::uuid, ${r.tenantId}::uuid, ${r.eventType}, ${r.topic}, ${r.partition}::int, ${r.offset}::bigint)`,
    ),
  )
  const result = yield* sql<{ event_id: string; dlq_id: string | null }>`
    WITH fresh (event_id, tenant_id, event_type, topic, partition, "offset") AS (VALUES ${values}),
    dead AS (
      SELECT fresh.event_id, open.id FROM fresh CROSS JOIN LATERAL (
        SELECT id FROM event_dlq
        WHERE consumer_group = ${group} AND event_id = fresh.event_id AND replay_status <> 'replayed'
        LIMIT 1) open
    ), claimed AS (
      INSERT INTO event_inbox (consumer_group, event_id, tenant_id, event_type, topic, partition, "offset")
      SELECT ${group}, fresh.* FROM fresh WHERE event_id NOT IN (SELECT event_id FROM dead)
      ON CONFLICT (consumer_group, event_id) DO NOTHING
      RETURNING event_id
    )
    SELECT event_id::text, NULL AS dlq_id FROM claimed
    UNION ALL SELECT event_id::text, id::text FROM dead`
  return {
    claimed: new Set(result.filter((r) => r.dlq_id === null).map((r) => r.event_id)),
    deadLettered: new Map(
      result.flatMap((r) => (r.dlq_id === null ? [] : [[r.event_id, r.dlq_id] as const])),
    ),
  } satisfies Claimed
})

/** Claims a DLQ replay's event: its open entry does not stop it. */
export const claimReplay = Effect.fn("Inbox.claimReplay")(function* (group: string, row: InboxRow) {
  const sql = yield* SqlClient.SqlClient
  const inserted = yield* sql<{ event_id: string }>`
    INSERT INTO event_inbox ${sql.insert({
      consumer_group: group,
      event_id: row.eventId,
      tenant_id: row.tenantId,
      event_type: row.eventType,
      topic: row.topic,
      partition: row.partition,
      offset: row.offset,
    })}
    ON CONFLICT (consumer_group, event_id) DO NOTHING
    RETURNING event_id`
  return { claimed: new Set(inserted.map((r) => r.event_id)), deadLettered: new Map() } satisfies Claimed
})
