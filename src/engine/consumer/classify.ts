/**
 * The one place that decides what a failure means: `retryable` (try again by the policy, outside the
 * transaction), `fatal` (straight to the DLQ), or `unavailable` — a dependency (the database, Redis,
 * Kafka) could not be reached or went away under the attempt. Pure, so its table is tested as a
 * table.
 *
 * `unavailable` says nothing about the event: the runtime does not spend the event's retry budget on
 * it but holds the partition until the dependency answers its probe (outage.ts), then tries again.
 * The verdict is a claim the probe checks: when the dependency answers at once, the failure was not
 * an outage this member can see (a driver error without a code, a connection the event's own
 * statement got killed) and it counts as a `retryable` attempt of the event. A statement timeout
 * (57014) is the event's own and stays `retryable`.
 */
import type { SqlError } from "@effect/sql"
import { KafkaError } from "../../platform/kafka.ts"
import { RedisError } from "../../platform/redis.ts"
import {
  errorCodeOf,
  isCheckoutFailure,
  isSqlError,
  isStaleStatement,
  socketErrorCodes,
  sqlStateOf,
} from "../../platform/sql-errors.ts"
import { MissingHeader } from "../record.ts"

export type Dependency = "database" | "redis" | "kafka"

export type Verdict =
  | {
      readonly kind: "retryable" | "fatal"
      /** The error's tag (or class name), stored in `event_dlq.error_tag`. */
      readonly tag: string
      readonly message: string
    }
  | {
      readonly kind: "unavailable"
      readonly dependency: Dependency
      readonly tag: string
      readonly message: string
    }

/**
 * SQLSTATEs (or their two-character classes) that say the server cannot serve this connection now —
 * not what the statement asked for.
 */
const unavailableSqlStates = new Set([
  "08", // connection exception
  "57P01", // admin shutdown: the server is restarting (or an operator terminated the backend)
  "57P02", // crash shutdown: another backend crashed, the server is resetting
  "57P03", // cannot connect now: starting up, shutting down, in recovery
  "53300", // too many connections
])

/** SQLSTATEs (or classes) that a later attempt can get past: contention and the statement's own time limit. */
const retryableSqlStates = new Set([
  "40001", // serialization failure
  "40P01", // deadlock detected
  "55P03", // lock not available
  "57014", // statement timeout / query canceled
])

/** Classes that fail the same way every time: data, integrity, authorisation, syntax/permission. */
const fatalSqlClasses = new Set(["22", "23", "28", "42"])

/** Redis replies that mean the server cannot serve now (loading its data, failing over). */
const unavailableRedisReplies = /^(LOADING|MASTERDOWN|TRYAGAIN|CLUSTERDOWN|READONLY)\b/

/** kafkajs errors of the connection rather than of the request. */
const kafkaConnectionErrors = new Set([
  "KafkaJSConnectionError",
  "KafkaJSConnectionClosedError",
  "KafkaJSRequestTimeoutError",
  "KafkaJSBrokerNotFound",
  "KafkaJSNoBrokerAvailableError",
])

const fatalTags = new Set([
  "Fatal",
  "DecodeFailed",
  "UnknownEventType",
  "UnknownEventVersion",
  "MalformedHeader",
  "MissingHeader",
])
const retryableTags = new Set(["Retryable", "LockContended", "FencingRejected"])

const tagOf = (error: unknown): string => {
  if (typeof error === "object" && error !== null) {
    const tag = (error as { _tag?: unknown })._tag
    if (typeof tag === "string") return tag
    if (error instanceof Error) return error.name
  }
  return "Unknown"
}

/** The message of anything thrown or failed with: an Error's, a tagged error's, else its text. */
export const messageOf = (error: unknown): string => {
  if (error instanceof Error && error.message) return error.message
  if (typeof error === "object" && error !== null) {
    const m = (error as { message?: unknown }).message
    if (typeof m === "string" && m) return m
  }
  return String(error)
}

const field = (value: unknown, name: string): unknown =>
  typeof value === "object" && value !== null ? (value as Record<string, unknown>)[name] : undefined

type Kind = Verdict["kind"]

const sqlKind = (error: SqlError.SqlError): Kind => {
  // A checkout that failed: nothing of the event reached the server.
  if (isCheckoutFailure(error)) return "unavailable"
  const code = sqlStateOf(error)
  // No SQLSTATE (a socket's code, or none at all): the connection was lost before the server answered.
  if (code === undefined) return "unavailable"
  if (unavailableSqlStates.has(code) || unavailableSqlStates.has(code.slice(0, 2))) return "unavailable"
  if (retryableSqlStates.has(code)) return "retryable"
  // A statement a migration or DISCARD left stale: prepared again, the next attempt runs.
  if (isStaleStatement(error)) return "retryable"
  if (fatalSqlClasses.has(code.slice(0, 2))) return "fatal"
  // Any other server-side error (raise_exception, invalid transaction state, …) repeats on retry.
  return "fatal"
}

const redisKind = (error: RedisError): Kind => {
  const cause = error.cause
  if (!(cause instanceof Error) || cause.name !== "ReplyError") return "unavailable"
  return unavailableRedisReplies.test(cause.message) ? "unavailable" : "retryable"
}

const kafkaKind = (error: KafkaError): Kind => {
  // kafkajs wraps what its retries finally gave up on.
  const cause = error.cause
  const last = field(cause, "name") === "KafkaJSNumberOfRetriesExceeded" ? field(cause, "cause") : cause
  const name = field(last, "name")
  if (typeof name === "string" && kafkaConnectionErrors.has(name)) return "unavailable"
  const code = errorCodeOf(last)
  if (code !== undefined && socketErrorCodes.has(code)) return "unavailable"
  return error.retriable ? "retryable" : "fatal"
}

const judge = (error: unknown): { kind: Kind; dependency?: Dependency } => {
  const tag = tagOf(error)
  if (fatalTags.has(tag) || error instanceof MissingHeader) return { kind: "fatal" }
  if (retryableTags.has(tag)) return { kind: "retryable" }
  if (isSqlError(error)) return { kind: sqlKind(error), dependency: "database" }
  if (error instanceof KafkaError) return { kind: kafkaKind(error), dependency: "kafka" }
  if (error instanceof RedisError) return { kind: redisKind(error), dependency: "redis" }
  if (field(error, "retriable") === true) return { kind: "retryable" }
  // Unrecognised failures get the policy's bounded retries before the DLQ: most are transient.
  return { kind: "retryable" }
}

export const classify = (error: unknown): Verdict => {
  const { kind, dependency } = judge(error)
  const tag = tagOf(error)
  const base = messageOf(error)
  const cause = isSqlError(error) ? error.cause : undefined
  const code = errorCodeOf(cause)
  const causeMessage = cause === undefined ? undefined : messageOf(cause)
  const message = [
    code ? `[${code}]` : "",
    base,
    causeMessage && causeMessage !== base ? `: ${causeMessage}` : "",
  ]
    .filter(Boolean)
    .join(" ")
  return kind === "unavailable" && dependency !== undefined
    ? { kind, dependency, tag, message }
    : { kind: kind === "unavailable" ? "retryable" : kind, tag, message }
}
