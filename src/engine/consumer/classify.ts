/**
 * The one place that decides what a failure means: `retryable` (try again by the policy, outside the
 * transaction) or `fatal` (straight to the DLQ). Pure, so its table is tested as a table.
 */
import { KafkaError } from "../../platform/kafka.ts"
import { RedisError } from "../../platform/redis.ts"
import { MissingHeader } from "../record.ts"

export type Verdict = {
  readonly kind: "retryable" | "fatal"
  /** The error's tag (or class name), stored in `event_dlq.error_tag`. */
  readonly tag: string
  readonly message: string
}

/** SQLSTATEs (or their two-character classes) that a later attempt can get past. */
const retryableSqlStates = new Set([
  "08", // connection exception
  "40001", // serialization failure
  "40P01", // deadlock detected
  "55P03", // lock not available
  "57014", // statement timeout / query canceled
  "57P01", // admin shutdown: the server is restarting
  "57P03", // cannot connect now
  "53300", // too many connections
])

/** Classes that fail the same way every time: data, integrity, authorisation, syntax/permission. */
const fatalSqlClasses = new Set(["22", "23", "28", "42"])

/** Socket-level failures surface as Node error codes rather than SQLSTATEs. */
const retryableSocketCodes = new Set(["ECONNREFUSED", "ECONNRESET", "ETIMEDOUT", "EPIPE", "EHOSTUNREACH"])

const fatalTags = new Set(["Fatal", "DecodeFailed", "UnknownEventType", "MalformedHeader", "MissingHeader"])
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

const codeOf = (cause: unknown): string | undefined => {
  const code = typeof cause === "object" && cause !== null ? (cause as { code?: unknown }).code : undefined
  return typeof code === "string" ? code : undefined
}

const sqlVerdict = (cause: unknown): Verdict["kind"] => {
  const code = codeOf(cause)
  // No code at all: the driver lost the connection before the server answered.
  if (code === undefined) return "retryable"
  if (retryableSocketCodes.has(code)) return "retryable"
  if (retryableSqlStates.has(code) || retryableSqlStates.has(code.slice(0, 2))) return "retryable"
  if (fatalSqlClasses.has(code.slice(0, 2))) return "fatal"
  // Any other server-side error (raise_exception, invalid transaction state, …) repeats on retry.
  return "fatal"
}

const kindOf = (error: unknown): Verdict["kind"] => {
  const tag = tagOf(error)
  if (fatalTags.has(tag) || error instanceof MissingHeader) return "fatal"
  if (retryableTags.has(tag)) return "retryable"
  if (tag === "SqlError") return sqlVerdict((error as { cause?: unknown }).cause)
  if (error instanceof KafkaError) return error.retriable ? "retryable" : "fatal"
  if (error instanceof RedisError) return "retryable"
  if (typeof error === "object" && error !== null && (error as { retriable?: unknown }).retriable === true)
    return "retryable"
  // Unrecognised failures get the policy's bounded retries before the DLQ: most are transient.
  return "retryable"
}

export const classify = (error: unknown): Verdict => {
  const kind = kindOf(error)
  const tag = tagOf(error)
  const base = messageOf(error)
  const code = tag === "SqlError" ? codeOf((error as { cause?: unknown }).cause) : undefined
  const causeMessage = tag === "SqlError" ? messageOf((error as { cause?: unknown }).cause ?? "") : undefined
  const message = [
    code ? `[${code}]` : "",
    base,
    causeMessage && causeMessage !== base ? `: ${causeMessage}` : "",
  ]
    .filter(Boolean)
    .join(" ")
  return { kind, tag, message }
}

export const isRetryable = (error: unknown): boolean => kindOf(error) === "retryable"
