/**
 * What a failed statement says about itself, in one place: the SQLSTATE PostgreSQL answered with,
 * and the few failures callers tell apart by it. `@effect/sql` wraps the driver's error in a
 * `SqlError` (its `cause`), and ours or kafkajs's wrappers may wrap that again, so the code is looked
 * for along the chain of causes.
 */
import { SqlError } from "@effect/sql"

/** Node's codes for a socket that failed: a connection lost or never made, not an answer. */
export const socketErrorCodes: ReadonlySet<string> = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ETIMEDOUT",
  "EPIPE",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENOTFOUND",
  "EAI_AGAIN",
])

const sqlStateShape = /^[0-9A-Z]{5}$/

const causes = function* (error: unknown) {
  for (let c = error, depth = 0; typeof c === "object" && c !== null && depth < 5; depth++) {
    yield c as {
      readonly code?: unknown
      readonly routine?: unknown
      readonly message?: unknown
      readonly cause?: unknown
    }
    c = (c as { readonly cause?: unknown }).cause
  }
}

/** The code on the failure or its nearest cause that has one: a SQLSTATE, or a socket's `ECONNRESET`. */
export const errorCodeOf = (error: unknown): string | undefined => {
  for (const c of causes(error)) if (typeof c.code === "string") return c.code
  return undefined
}

/** The SQLSTATE the server answered with (`23505`), if it answered at all. */
export const sqlStateOf = (error: unknown): string | undefined => {
  for (const c of causes(error))
    if (typeof c.code === "string" && sqlStateShape.test(c.code) && !socketErrorCodes.has(c.code))
      return c.code
  return undefined
}

/**
 * A named statement the server no longer has as its connection prepared it: a migration changed the
 * type of a column it returns (0A000 from the plan cache's revalidation; other 0A000s are features
 * not supported), or the connection's statements were dropped (26000). The statement cache
 * (pg-prepared.ts) prepares it again at its next execution, so an attempt after this one works.
 */
export const isStaleStatement = (error: unknown) => {
  for (const c of causes(error))
    if (c.code === "26000" || (c.code === "0A000" && c.routine === "RevalidateCachedQuery")) return true
  return false
}

export const isSqlError = (u: unknown): u is SqlError.SqlError => u instanceof SqlError.SqlError

/** A row refers to one that does not exist (23503). */
export const isForeignKeyViolation = (error: unknown) => sqlStateOf(error) === "23503"

/**
 * No pooled connection came free within the pool's wait (every connection busy: more work than the
 * pool serves), not a database that failed. pg-pool says so in exactly these words for a checkout
 * that waited in its queue; a new connection that cannot be made fails otherwise.
 */
export const isPoolExhausted = (error: unknown) => {
  for (const c of causes(error)) if (c.message === "timeout exceeded when trying to connect") return true
  return false
}

/** `@effect/sql`'s words for a checkout that failed: nothing of the statement reached the server. */
export const isCheckoutFailure = (error: unknown) =>
  isSqlError(error) && error.message.startsWith("Failed to acquire connection")
