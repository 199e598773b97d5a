/**
 * The inbox: a `(consumer_group, event_id)` row written in the same transaction as the handler's
 * effects. Claiming inserts with ON CONFLICT DO NOTHING, so an event already done — or being done by
 * another member right now, whose row lock we then wait on — comes back as not claimed.
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

/** Inserts the rows of one tenant's events; returns the ids that were new (to be processed). */
export const claim = Effect.fn("Inbox.claim")(function* (group: string, rows: ReadonlyArray<InboxRow>) {
  const sql = yield* SqlClient.SqlClient
  const inserted = yield* sql<{ event_id: string }>`
    INSERT INTO event_inbox ${sql.insert(
      rows.map((r) => ({
        consumer_group: group,
        event_id: r.eventId,
        tenant_id: r.tenantId,
        event_type: r.eventType,
        topic: r.topic,
        partition: r.partition,
        offset: r.offset,
      })),
    )}
    ON CONFLICT (consumer_group, event_id) DO NOTHING
    RETURNING event_id`
  return new Set(inserted.map((r) => r.event_id))
})
