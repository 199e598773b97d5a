/**
 * The engine's public surface: what an application built on it imports (docs/engine.md walks
 * through it). Topics and the outbox on the writing side; the Kafka record format; the relay; on
 * the reading side consumer declarations, retry policies, the errors a handler fails with, locks
 * with fencing, work deferred to the end of a unit, and the member that runs a consumer; the
 * stale-while-revalidate cache. Everything not named here is the engine's own business.
 */
export { Cache, type InvalidateTarget, type SwrOptions } from "./cache/swr.ts"
export { beforeCommit, beforeCommitBatch, withUnitLocks } from "./consumer/before-commit.ts"
export { classify, type Dependency, type Verdict } from "./consumer/classify.ts"
export {
  type ConsumerDefinition,
  defineConsumer,
  type EventMeta,
  type Handler,
  type Handlers,
  on,
  type Subscription,
} from "./consumer/definition.ts"
export type { DeadLetter } from "./consumer/dlq.ts"
export {
  DecodeFailed,
  Fatal,
  FencingRejected,
  LockContended,
  MalformedHeader,
  Retryable,
  UnknownEventType,
} from "./consumer/errors.ts"
export { defaultLockOptions, type Held, type LockOptions, Locks } from "./consumer/lock.ts"
export {
  type MemberReport,
  MemberReports,
  type SeenReport,
  staleAfterMs,
} from "./consumer/member-reports.ts"
export {
  decodeRetryPolicy,
  defaultRetryPolicy,
  nominalDelays,
  RetryPolicy,
  retrySchedule,
} from "./consumer/retry.ts"
export {
  ConsumerCrashed,
  defaultMemberOptions,
  type MemberOptions,
  MemberServices,
  memberLayer,
  runMember,
} from "./consumer/runtime.ts"
export { type EventVersions, eventVersions } from "./event-versions.ts"
export { type AppendError, type NewEvent, Outbox, OutboxOutsideTransaction } from "./outbox.ts"
export {
  MissingHeader,
  type OutboxRecord,
  type RecordMeta,
  readRecordMeta,
  toKafkaMessage,
} from "./record.ts"
export {
  defaultSlotFor,
  outboxBacklog,
  type RelayConfig,
  RelayError,
  type RelayMode,
  relayDefaults,
  runRelay,
  slotLag,
} from "./relay/index.ts"
export { registrySchemas, type TopicSchemas, topicSchemas } from "./schema-export.ts"
export {
  defineTopic,
  type EventSchemas,
  type EventType,
  type PayloadOf,
  type Topic,
  topicNameOf,
} from "./topic.ts"
