/**
 * The typed failures of consuming a record. Handlers say what their own failure means with
 * `Retryable` or `Fatal`; the rest are raised by the runtime. `classify.ts` decides, in one table,
 * which of them (and which database, Redis and Kafka errors) are worth another attempt.
 */
import { Schema } from "effect"

/** A handler's transient failure: try again by the retry policy. */
export class Retryable extends Schema.TaggedError<Retryable>()("Retryable", {
  message: Schema.String,
  cause: Schema.optional(Schema.Defect),
}) {}

/** A handler's permanent failure: straight to the DLQ, no retries. */
export class Fatal extends Schema.TaggedError<Fatal>()("Fatal", {
  message: Schema.String,
  cause: Schema.optional(Schema.Defect),
}) {}

/** The value is not JSON, or does not match the event type's Schema. */
export class DecodeFailed extends Schema.TaggedError<DecodeFailed>()("DecodeFailed", {
  eventType: Schema.String,
  reason: Schema.String,
}) {
  override get message() {
    return `payload of ${this.eventType} does not decode: ${this.reason}`
  }
}

/** The `eventType` header names a type the topic does not declare. */
export class UnknownEventType extends Schema.TaggedError<UnknownEventType>()("UnknownEventType", {
  topic: Schema.String,
  eventType: Schema.String,
}) {
  override get message() {
    return `topic ${this.topic} declares no event type '${this.eventType}'`
  }
}

/**
 * The record was written as a version of its event type this consumer does not declare (newer than
 * its latest, or no version number at all): dead-lettered, to be replayed once the consumer knows it.
 */
export class UnknownEventVersion extends Schema.TaggedError<UnknownEventVersion>()("UnknownEventVersion", {
  eventType: Schema.String,
  version: Schema.String,
  latest: Schema.Number,
}) {
  override get message() {
    return `${this.eventType} version '${this.version.slice(0, 80)}' is not one this consumer declares (v1 to v${this.latest})`
  }
}

/** A contract header is present but unusable (event and tenant ids are UUIDs). */
export class MalformedHeader extends Schema.TaggedError<MalformedHeader>()("MalformedHeader", {
  header: Schema.String,
  value: Schema.String,
}) {
  override get message() {
    return `header '${this.header}' is not a UUID: '${this.value.slice(0, 80)}'`
  }
}

/** Another holder owns the lock after the wait budget: retryable by policy. */
export class LockContended extends Schema.TaggedError<LockContended>()("LockContended", {
  lockKey: Schema.String,
}) {
  override get message() {
    return `lock ${this.lockKey} is held by another worker`
  }
}

/**
 * The database has seen a newer fencing token (`newest`) for this lock than this holder's: its lock
 * had expired and someone else wrote since, or Redis lost its counter's latest value (a restart from
 * an older snapshot, a failover to a lagging replica). Retryable: `Locks` raises the counter past
 * `newest` when a holder's work fails with this, so the next attempt takes a token that passes.
 */
export class FencingRejected extends Schema.TaggedError<FencingRejected>()("FencingRejected", {
  lockKey: Schema.String,
  token: Schema.Number,
  newest: Schema.Number,
}) {
  override get message() {
    return `fencing token ${this.token} for ${this.lockKey} is stale: the database has seen ${this.newest}`
  }
}
