import { Schema } from "effect"
import { sqlStateOf } from "../../platform/sql-errors.ts"

/**
 * Why a relay session stopped. `fatal` errors (bad credentials, a missing publication, a schema that
 * does not fit) end the relay; everything else (connections dropped, a slot still held by a dying
 * predecessor) makes it step down and try again after a backoff.
 */
export class RelayError extends Schema.TaggedError<RelayError>()("RelayError", {
  reason: Schema.String,
  fatal: Schema.Boolean,
  cause: Schema.optional(Schema.Defect),
}) {
  override get message() {
    return `relay: ${this.reason}${causeMessages(this.cause)}`
  }
}

/** SqlError says "Failed to execute statement"; what PostgreSQL said is in its cause. */
const causeMessages = (cause: unknown): string => {
  let out = ""
  for (let c = cause, depth = 0; c instanceof Error && depth < 4; depth++) {
    out += `: ${c.message}`
    c = c.cause
  }
  return out
}

/**
 * SQLSTATE classes that no retry can fix: 28 auth, 3D no such database, 42 syntax or undefined
 * object (e.g. the publication is missing), 55000 wal_level is not logical.
 */
const fatalSqlState = (code: string) =>
  code.startsWith("28") || code.startsWith("3D") || code.startsWith("42") || code === "55000"

export const relayError = (reason: string) => (cause: unknown) => {
  const code = sqlStateOf(cause)
  return new RelayError({ reason, fatal: code !== undefined && fatalSqlState(code), cause })
}
