/** What a caller may fix about the event a domain write appends (else: a fresh UUIDv7, no trace). */
export interface EventMeta {
  readonly eventId?: string
  readonly traceparent?: string
}

/** The `Outbox.append` fields for `meta`. */
export const eventFields = (meta: EventMeta) => ({ id: meta.eventId, traceparent: meta.traceparent })
