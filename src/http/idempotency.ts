/**
 * `Idempotency-Key` for writes, stored in `idempotency_records` (migration 004).
 *
 * 1. Claim: one short transaction deletes this key's expired record and inserts an in-flight
 *    record with `ON CONFLICT DO NOTHING` — exactly one request wins, before anything executes.
 *    A loser is told: completed + same fingerprint → the stored response, replayed; different
 *    fingerprint → 422; still in flight → 409.
 * 2. Execute: the write and the completion (state, status, body) commit in ONE transaction, so an
 *    executed write always has its record and a rolled-back one never does.
 * 3. A rejected write (4xx problem) is recorded too, so its replay is identical; a failure that
 *    rolled back is released so a retry can execute. A store that cannot claim → 503, nothing run.
 *
 * The claim token is the record's `created_at` in microseconds: a claim left behind by a crashed
 * process is taken over after `leaseSeconds`, and the old holder's completion then matches no row,
 * so its transaction rolls back instead of executing twice.
 */
import { createHash } from "node:crypto"
import { HttpServerRequest, HttpServerResponse } from "@effect/platform"
import { SqlClient, type SqlError } from "@effect/sql"
import { Cause, Context, Data, Duration, Effect, Exit, Layer, Option, Schedule } from "effect"
import { withTenant } from "../platform/db.ts"
import {
  IdempotencyInFlight,
  IdempotencyKeyReused,
  isProblem,
  type Problem,
  problemBody,
  problemContentType,
  ServiceUnavailable,
  ValidationProblem,
} from "./problem.ts"

export const idempotencyHeader = "idempotency-key"
export const replayedHeader = "idempotent-replayed"
const leaseSeconds = 60
const maxKeyLength = 255

/** A response as stored and as sent: both come from these exact bytes. */
export interface StoredResponse {
  readonly status: number
  readonly contentType: string
  readonly body: string
}

export const jsonResponse = (status: number, body: unknown): StoredResponse => ({
  status,
  contentType: "application/json",
  body: JSON.stringify(body),
})

type Claim =
  | { readonly _tag: "Claimed"; readonly token: string }
  | { readonly _tag: "Replay"; readonly response: StoredResponse }
  | { readonly _tag: "InFlight" }
  | { readonly _tag: "Mismatch" }

class ClaimLost extends Data.TaggedError("ClaimLost") {}

const token = "(extract(epoch FROM created_at) * 1000000)::bigint::text"

export class IdempotencyStore extends Context.Tag("IdempotencyStore")<
  IdempotencyStore,
  {
    readonly claim: (
      tenantId: string,
      key: string,
      fingerprint: string,
    ) => Effect.Effect<Claim, SqlError.SqlError>
    /** Marks the claim completed; runs in the caller's transaction. False when the claim was lost. */
    readonly complete: (
      tenantId: string,
      key: string,
      token: string,
      response: StoredResponse,
    ) => Effect.Effect<boolean, SqlError.SqlError>
    readonly release: (tenantId: string, key: string, token: string) => Effect.Effect<void, SqlError.SqlError>
    /** Deletes expired records of every tenant; runs as the connecting (operator) role. */
    readonly purgeExpired: Effect.Effect<number, SqlError.SqlError>
  }
>() {
  static readonly layer = Layer.effect(
    IdempotencyStore,
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const inTenant =
        (tenantId: string) =>
        <A, E>(self: Effect.Effect<A, E, SqlClient.SqlClient>) =>
          self.pipe(withTenant(tenantId), Effect.provideService(SqlClient.SqlClient, sql))

      const claim = Effect.fn("Idempotency.claim")(function* (
        tenantId: string,
        key: string,
        fingerprint: string,
      ) {
        return yield* inTenant(tenantId)(
          Effect.gen(function* () {
            yield* sql`DELETE FROM idempotency_records
              WHERE tenant_id = ${tenantId} AND idempotency_key = ${key} AND expires_at <= now()`
            const inserted = yield* sql<{ token: string }>`
              INSERT INTO idempotency_records (tenant_id, idempotency_key, fingerprint, state)
              VALUES (${tenantId}, ${key}, ${fingerprint}, 'in_flight')
              ON CONFLICT DO NOTHING
              RETURNING ${sql.literal(token)} AS token`
            if (inserted[0]) return { _tag: "Claimed", token: inserted[0].token } satisfies Claim
            const [existing] = yield* sql<{
              fingerprint: string
              state: "in_flight" | "completed"
              status: number | null
              contentType: string | null
              body: string | null
              token: string
              stale: boolean
            }>`SELECT fingerprint, state, response_status AS status,
                  response_headers->>'content-type' AS "contentType", response_body AS body,
                  ${sql.literal(token)} AS token,
                  created_at < now() - make_interval(secs => ${leaseSeconds}) AS stale
                FROM idempotency_records
                WHERE tenant_id = ${tenantId} AND idempotency_key = ${key}
                FOR UPDATE`
            if (!existing) return { _tag: "InFlight" } satisfies Claim
            if (existing.fingerprint !== fingerprint) return { _tag: "Mismatch" } satisfies Claim
            if (existing.state === "completed") {
              return {
                _tag: "Replay",
                response: {
                  status: existing.status ?? 500,
                  contentType: existing.contentType ?? "application/json",
                  body: existing.body ?? "",
                },
              } satisfies Claim
            }
            if (!existing.stale) return { _tag: "InFlight" } satisfies Claim
            const taken = yield* sql<{ token: string }>`
              UPDATE idempotency_records SET created_at = clock_timestamp()
              WHERE tenant_id = ${tenantId} AND idempotency_key = ${key}
                AND state = 'in_flight' AND ${sql.literal(token)} = ${existing.token}
              RETURNING ${sql.literal(token)} AS token`
            return taken[0]
              ? ({ _tag: "Claimed", token: taken[0].token } satisfies Claim)
              : ({ _tag: "InFlight" } satisfies Claim)
          }),
        )
      })

      const complete = Effect.fn("Idempotency.complete")(function* (
        tenantId: string,
        key: string,
        claimToken: string,
        response: StoredResponse,
      ) {
        const rows = yield* sql`
          UPDATE idempotency_records
          SET state = 'completed', response_status = ${response.status},
              response_headers = ${JSON.stringify({ "content-type": response.contentType })}::jsonb,
              response_body = ${response.body}, completed_at = now()
          WHERE tenant_id = ${tenantId} AND idempotency_key = ${key}
            AND state = 'in_flight' AND ${sql.literal(token)} = ${claimToken}
          RETURNING 1`
        return rows.length === 1
      })

      const release = Effect.fn("Idempotency.release")(function* (
        tenantId: string,
        key: string,
        claimToken: string,
      ) {
        yield* inTenant(tenantId)(
          sql`DELETE FROM idempotency_records
            WHERE tenant_id = ${tenantId} AND idempotency_key = ${key}
              AND state = 'in_flight' AND ${sql.literal(token)} = ${claimToken}`,
        )
      })

      const purgeExpired = sql<{ n: number }>`
        WITH gone AS (DELETE FROM idempotency_records WHERE expires_at <= now() RETURNING 1)
        SELECT count(*)::int AS n FROM gone`.pipe(
        Effect.map((rows) => rows[0]?.n ?? 0),
        Effect.withSpan("Idempotency.purgeExpired"),
      )

      return IdempotencyStore.of({ claim, complete, release, purgeExpired })
    }),
  )

  /** Purges expired records now and then for as long as the layer lives. */
  static readonly purgeLoop = Layer.scopedDiscard(
    Effect.gen(function* () {
      const store = yield* IdempotencyStore
      yield* store.purgeExpired.pipe(
        Effect.tap((n) => (n > 0 ? Effect.logInfo(`purged ${n} expired idempotency records`) : Effect.void)),
        Effect.catchAll((e) => Effect.logWarning("idempotency purge failed", e)),
        Effect.repeat(Schedule.spaced(Duration.minutes(10))),
        Effect.forkScoped,
      )
    }),
  )
}

const sendStored = (response: StoredResponse, replayed: boolean) =>
  HttpServerResponse.text(response.body, {
    status: response.status,
    contentType: response.contentType,
    headers: replayed ? { [replayedHeader]: "true" } : {},
  })

const unavailable = (what: string) => (e: SqlError.SqlError) =>
  Effect.zipRight(
    Effect.logWarning(`${what} failed`, e),
    Effect.fail(new ServiceUnavailable({ detail: `the ${what} is unavailable; nothing was executed` })),
  )

/** Request identity for key reuse: method, path with query, and the exact body bytes. */
const fingerprintOf = (request: HttpServerRequest.HttpServerRequest) =>
  Effect.map(request.text, (body) =>
    createHash("sha256").update(`${request.method}\n${request.url}\n`).update(body).digest("hex"),
  )

const validKey = (key: string) => key.length > 0 && key.length <= maxKeyLength && /^[\x21-\x7e]+$/.test(key)

/**
 * Runs a write for the current tenant under its Idempotency-Key (when the request has one): `write`
 * runs in the tenant's RLS transaction and returns the response to send and to store.
 */
export const idempotentWrite = <E extends Problem | SqlError.SqlError, R>(
  tenantId: string,
  write: Effect.Effect<StoredResponse, E, R>,
) =>
  Effect.gen(function* () {
    const request = yield* HttpServerRequest.HttpServerRequest
    const key = request.headers[idempotencyHeader]
    if (key === undefined) {
      const response = yield* withTenant(tenantId)(write).pipe(
        Effect.catchAll((e: Problem | SqlError.SqlError) =>
          isSqlError(e) ? unavailable("database")(e) : Effect.succeed(problemStored(e)),
        ),
      )
      return sendStored(response, false)
    }
    if (!validKey(key)) {
      return yield* new ValidationProblem({
        detail: `Idempotency-Key must be 1-${maxKeyLength} visible ASCII characters`,
        errors: [{ path: "headers.idempotency-key", message: "invalid Idempotency-Key" }],
      })
    }
    const store = yield* IdempotencyStore
    const fingerprint = yield* Effect.orDie(fingerprintOf(request))
    const claim = yield* store
      .claim(tenantId, key, fingerprint)
      .pipe(Effect.catchAll(unavailable("idempotency store")))
    switch (claim._tag) {
      case "Replay":
        return sendStored(claim.response, true)
      case "Mismatch":
        return yield* new IdempotencyKeyReused({
          detail: "this Idempotency-Key was already used with a different method, path or body",
        })
      case "InFlight":
        return yield* new IdempotencyInFlight({ detail: "the first request with this key has not finished" })
      case "Claimed":
        break
    }
    const exit = yield* withTenant(tenantId)(
      Effect.gen(function* () {
        const response = yield* write
        const kept = yield* store.complete(tenantId, key, claim.token, response)
        if (!kept) return yield* new ClaimLost()
        return response
      }),
    ).pipe(Effect.exit)
    if (Exit.isSuccess(exit)) return sendStored(exit.value, false)
    const failure = Cause.failureOption(exit.cause)
    if (Option.isSome(failure) && failure.value instanceof ClaimLost) {
      return yield* new IdempotencyInFlight({ detail: "this request's claim on its key was taken over" })
    }
    if (Option.isSome(failure) && isProblem(failure.value) && failure.value.status < 500) {
      const rejected = problemStored(failure.value)
      const recorded = yield* withTenant(tenantId)(store.complete(tenantId, key, claim.token, rejected)).pipe(
        Effect.orElseSucceed(() => false),
      )
      if (!recorded) yield* store.release(tenantId, key, claim.token).pipe(Effect.ignore)
      return sendStored(rejected, false)
    }
    yield* store.release(tenantId, key, claim.token).pipe(Effect.ignore)
    if (Option.isSome(failure) && isSqlError(failure.value))
      return yield* unavailable("database")(failure.value)
    return yield* Effect.failCause(exit.cause as Cause.Cause<never>)
  })

const problemStored = (p: Problem): StoredResponse => ({
  status: p.status,
  contentType: problemContentType,
  body: problemBody(p),
})

const isSqlError = (u: unknown): u is SqlError.SqlError =>
  typeof u === "object" && u !== null && (u as { _tag?: unknown })._tag === "SqlError"
