/**
 * `Idempotency-Key` for writes, stored in `idempotency_records` (migration 004).
 *
 * A keyed write is ONE tenant transaction (one pooled connection, one commit):
 * 1. Claim: `pg_try_advisory_xact_lock` on (tenant, key), then the in-flight record inserted with
 *    `ON CONFLICT DO NOTHING` — one statement. The lock is visible to every other session at once,
 *    uncommitted as the record is, so a concurrent request with the same key is told 409 without
 *    waiting; only the lock holder ever inserts, so the insert never blocks. A committed record
 *    found instead: completed + same fingerprint → the stored response, replayed; different
 *    fingerprint → 422; expired → claimed afresh.
 * 2. Execute under a savepoint, then mark the record completed (status, body) — the write and its
 *    record commit together, so an executed write always has its record and a rolled-back one
 *    never does (a crash or a failed commit leaves no claim behind to clean up).
 * 3. A rejected write (4xx problem) is rolled back to the savepoint and recorded instead, still
 *    under the lock, so its replay is identical. A store that cannot claim → 503, nothing run.
 *
 * A connection lost before the COMMIT (a restart, a terminated backend) rolls everything back: 503,
 * nothing executed. Lost during the COMMIT, the write may have committed with its record or not at
 * all, and the 503 says so; the retry with the key answers that: the stored response, replayed, or
 * a claim on a key that is free again (the lock died with the connection), executed once.
 *
 * The lock is released only after the commit is visible, so the next holder's claim sees the
 * record; the primary key stays the final guard against a second execution. In-flight records
 * committed by the previous two-transaction protocol (rolling deploys) still answer 409 and are
 * taken over after `leaseSeconds`; their holder's completion then matches no row and rolls back.
 */
import { createHash } from "node:crypto"
import { HttpServerRequest, HttpServerResponse } from "@effect/platform"
import { SqlClient, type SqlError } from "@effect/sql"
import { Context, Data, Duration, Effect, Layer, Schedule } from "effect"
import { withTenant } from "../platform/db.ts"
import {
  databaseUnavailable,
  IdempotencyInFlight,
  IdempotencyKeyReused,
  type InternalProblem,
  type Problem,
  problemBody,
  problemContentType,
  type ServiceUnavailable,
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
  | { readonly _tag: "Claimed" }
  | { readonly _tag: "Replay"; readonly response: StoredResponse }
  | { readonly _tag: "InFlight" }
  | { readonly _tag: "Mismatch" }

const claimed: Claim = { _tag: "Claimed" }
const inFlight: Claim = { _tag: "InFlight" }

class ClaimLost extends Data.TaggedError("ClaimLost") {}

interface RecordRow {
  readonly fingerprint: string
  readonly state: "in_flight" | "completed"
  readonly status: number | null
  readonly contentType: string | null
  readonly body: string | null
  readonly expired: boolean
  readonly stale: boolean
}

const recordColumns = (sql: SqlClient.SqlClient) =>
  sql.literal(`fingerprint, state, response_status AS status,
    response_headers->>'content-type' AS "contentType", response_body AS body,
    expires_at <= now() AS expired,
    created_at < now() - make_interval(secs => ${leaseSeconds}) AS stale`)

/** What a live record of another request says to this one: replay, reuse (422) or in flight. */
const answer = (record: RecordRow, fingerprint: string): Claim => {
  if (record.fingerprint !== fingerprint) return { _tag: "Mismatch" }
  if (record.state !== "completed") return inFlight
  return {
    _tag: "Replay",
    response: {
      status: record.status ?? 500,
      contentType: record.contentType ?? "application/json",
      body: record.body ?? "",
    },
  }
}

export class IdempotencyStore extends Context.Tag("IdempotencyStore")<
  IdempotencyStore,
  {
    /** Claims the key in the caller's tenant transaction; a `Claimed` key is held until it ends. */
    readonly claim: (
      tenantId: string,
      key: string,
      fingerprint: string,
    ) => Effect.Effect<Claim, SqlError.SqlError, SqlClient.SqlClient>
    /** Marks the claim completed in the caller's transaction. False when the claim was lost. */
    readonly complete: (
      tenantId: string,
      key: string,
      response: StoredResponse,
    ) => Effect.Effect<boolean, SqlError.SqlError, SqlClient.SqlClient>
    /** Deletes expired records of every tenant; runs as the connecting (operator) role. */
    readonly purgeExpired: Effect.Effect<number, SqlError.SqlError>
  }
>() {
  static readonly layer = Layer.effect(
    IdempotencyStore,
    Effect.gen(function* () {
      const operator = yield* SqlClient.SqlClient

      const claim = Effect.fn("Idempotency.claim")(function* (
        tenantId: string,
        key: string,
        fingerprint: string,
      ) {
        const sql = yield* SqlClient.SqlClient
        // A live completed record is final: answered from it without the lock, so replays never
        // contend. Otherwise the lock (CASE keeps it unevaluated for replays; volatile, so the CTE
        // runs once and before the insert reads it) and the insert in the same statement.
        const [first] = yield* sql<RecordRow & { locked: boolean | null; inserted: boolean }>`
          WITH existing AS (
            SELECT ${recordColumns(sql)} FROM idempotency_records
            WHERE tenant_id = ${tenantId} AND idempotency_key = ${key}
          ), lock AS (
            SELECT CASE WHEN NOT EXISTS (SELECT 1 FROM existing WHERE state = 'completed' AND NOT expired)
              THEN pg_try_advisory_xact_lock(hashtextextended(${tenantId}::text || ':' || ${key}::text, 0))
            END AS locked
          ), claim AS (
            INSERT INTO idempotency_records (tenant_id, idempotency_key, fingerprint, state)
            SELECT ${tenantId}::uuid, ${key}::text, ${fingerprint}::text, 'in_flight' FROM lock WHERE locked
            ON CONFLICT DO NOTHING
            RETURNING 1
          )
          SELECT existing.*, lock.locked, EXISTS (SELECT 1 FROM claim) AS inserted
          FROM lock LEFT JOIN existing ON true`
        if (!first) return inFlight
        if (first.locked === null) return answer(first, fingerprint)
        if (!first.locked) return inFlight
        if (first.inserted) return claimed
        // Under the lock with a record in the way: read it again in a new statement, whose snapshot
        // is taken under the lock and so sees whatever the previous holder committed.
        const [existing] = yield* sql<RecordRow>`SELECT ${recordColumns(sql)} FROM idempotency_records
          WHERE tenant_id = ${tenantId} AND idempotency_key = ${key}
          FOR UPDATE`
        if (!existing) return inFlight
        if (existing.expired) {
          yield* sql`DELETE FROM idempotency_records WHERE tenant_id = ${tenantId} AND idempotency_key = ${key}`
          yield* sql`INSERT INTO idempotency_records (tenant_id, idempotency_key, fingerprint, state)
            VALUES (${tenantId}, ${key}, ${fingerprint}, 'in_flight')`
          return claimed
        }
        if (existing.state === "completed" || existing.fingerprint !== fingerprint)
          return answer(existing, fingerprint)
        if (!existing.stale) return inFlight
        yield* sql`UPDATE idempotency_records SET created_at = clock_timestamp()
          WHERE tenant_id = ${tenantId} AND idempotency_key = ${key}`
        return claimed
      })

      const complete = Effect.fn("Idempotency.complete")(function* (
        tenantId: string,
        key: string,
        response: StoredResponse,
      ) {
        const sql = yield* SqlClient.SqlClient
        const rows = yield* sql`
          UPDATE idempotency_records
          SET state = 'completed', response_status = ${response.status},
              response_headers = ${JSON.stringify({ "content-type": response.contentType })}::jsonb,
              response_body = ${response.body}, completed_at = now()
          WHERE tenant_id = ${tenantId} AND idempotency_key = ${key} AND state = 'in_flight'
          RETURNING 1`
        return rows.length === 1
      })

      const purgeExpired = operator<{ n: number }>`
        WITH gone AS (DELETE FROM idempotency_records WHERE expires_at <= now() RETURNING 1)
        SELECT count(*)::int AS n FROM gone`.pipe(
        Effect.map((rows) => rows[0]?.n ?? 0),
        Effect.withSpan("Idempotency.purgeExpired"),
      )

      return IdempotencyStore.of({ claim, complete, purgeExpired })
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

/** The 503s of a write, made once rather than per request. */
const databaseDown = databaseUnavailable("database", { write: "unkeyed" })
const keyedDatabaseDown = databaseUnavailable("database", { write: "keyed" })
const storeDown = databaseUnavailable("idempotency store", { write: "keyed" })

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
          isSqlError(e) ? databaseDown(e) : Effect.succeed(problemStored(e)),
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
    const outcome = yield* withTenant(tenantId)(
      Effect.gen(function* () {
        const claim = yield* store.claim(tenantId, key, fingerprint).pipe(Effect.catchAll(storeDown))
        if (claim._tag !== "Claimed") return claim
        const response = yield* rejectable(write)
        if (!(yield* store.complete(tenantId, key, response))) return yield* new ClaimLost()
        return { _tag: "Executed", response } as const
      }),
    ).pipe(
      Effect.catchAll(
        (
          e: ClaimLost | ServiceUnavailable | InternalProblem | SqlError.SqlError,
        ): Effect.Effect<never, IdempotencyInFlight | ServiceUnavailable | InternalProblem> => {
          if (e instanceof ClaimLost)
            return Effect.fail(
              new IdempotencyInFlight({ detail: "this request's claim on its key was taken over" }),
            )
          return isSqlError(e) ? keyedDatabaseDown(e) : Effect.fail(e)
        },
      ),
    )
    switch (outcome._tag) {
      case "Executed":
        return sendStored(outcome.response, false)
      case "Replay":
        return sendStored(outcome.response, true)
      case "Mismatch":
        return yield* new IdempotencyKeyReused({
          detail: "this Idempotency-Key was already used with a different method, path or body",
        })
      case "InFlight":
        return yield* new IdempotencyInFlight({ detail: "the first request with this key has not finished" })
    }
  })

/**
 * `write` under a savepoint: a 4xx problem undoes whatever it did and becomes the response to
 * record, while the transaction (and the key's claim) stays usable.
 */
const rejectable = <E extends Problem | SqlError.SqlError, R>(write: Effect.Effect<StoredResponse, E, R>) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    yield* sql`SAVEPOINT idempotent_write`
    return yield* write.pipe(
      Effect.catchAll(
        (
          e: Problem | SqlError.SqlError,
        ): Effect.Effect<StoredResponse, ServiceUnavailable | InternalProblem | SqlError.SqlError> => {
          if (isSqlError(e)) return Effect.fail(e)
          if (e.status >= 500) return Effect.fail(e as ServiceUnavailable | InternalProblem)
          return Effect.as(sql`ROLLBACK TO SAVEPOINT idempotent_write`, problemStored(e))
        },
      ),
    )
  })

const problemStored = (p: Problem): StoredResponse => ({
  status: p.status,
  contentType: problemContentType,
  body: problemBody(p),
})

const isSqlError = (u: unknown): u is SqlError.SqlError =>
  typeof u === "object" && u !== null && (u as { _tag?: unknown })._tag === "SqlError"
