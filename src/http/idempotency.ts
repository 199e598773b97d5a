/**
 * `Idempotency-Key` for writes: the HTTP flow over the `IdempotencyStore`.
 *
 * A keyed write is ONE tenant transaction (one pooled connection, one commit):
 * 1. Claim the key (see `idempotency-store.ts`): a request that finds it in flight is told 409
 *    without waiting; a completed record with the same fingerprint is replayed, with another
 *    fingerprint it is 422.
 * 2. Execute under a savepoint, then mark the record completed (status, body) — the write and its
 *    record commit together, so an executed write always has its record and a rolled-back one
 *    never does (a crash or a failed commit leaves no claim behind to clean up).
 * 3. A rejected write (an error the API declares with a 4xx status) is rolled back to the
 *    savepoint and recorded instead, with the response HttpApi answers it with (`ErrorResponses`),
 *    still under the lock, so its replay is identical. A store that cannot claim → 503, nothing run.
 *
 * A connection lost before the COMMIT (a restart, a terminated backend) rolls everything back: 503,
 * nothing executed. Lost during the COMMIT, the write may have committed with its record or not at
 * all, and the 503 says so; the retry with the key answers that: the stored response, replayed, or
 * a claim on a key that is free again (the lock died with the connection), executed once.
 */
import { createHash } from "node:crypto"
import type { HttpApiEndpoint } from "@effect/platform"
import { HttpServerRequest, HttpServerResponse } from "@effect/platform"
import type { HttpMethod } from "@effect/platform/HttpMethod"
import { SqlClient, type SqlError } from "@effect/sql"
import { Data, Effect, Option, Schema } from "effect"
import { withTenant } from "../platform/db.ts"
import { isSqlError } from "../platform/sql-errors.ts"
import { ErrorResponses } from "./error-responses.ts"
import { IdempotencyStore, type StoredResponse } from "./idempotency-store.ts"
import {
  databaseUnavailable,
  IdempotencyInFlight,
  IdempotencyKeyReused,
  ValidationProblem,
} from "./problem.ts"

export const idempotencyHeader = "idempotency-key"
export const replayedHeader = "idempotent-replayed"
const maxKeyLength = 255

export const jsonResponse = (status: number, body: unknown): StoredResponse => ({
  status,
  contentType: "application/json",
  body: JSON.stringify(body),
})

const IdempotencyHeaders = Schema.Struct({
  [idempotencyHeader]: Schema.optional(
    Schema.String.annotations({
      description:
        "Makes the write safe to retry for 24 h: the same key and request replay the stored response (header `Idempotent-Replayed: true`).",
    }),
  ),
})

/**
 * Declares an endpoint as a write behind `idempotentWrite`: the header it reads and the two
 * problems it adds. Its other two, a malformed key's 400 and the store's 503, are among those the
 * API declares for every route.
 */
export const withIdempotencyKey = <
  Name extends string,
  Method extends HttpMethod,
  Path,
  UrlParams,
  Payload,
  Success,
  Error,
  R,
  RE,
>(
  endpoint: HttpApiEndpoint.HttpApiEndpoint<
    Name,
    Method,
    Path,
    UrlParams,
    Payload,
    never,
    Success,
    Error,
    R,
    RE
  >,
) => endpoint.setHeaders(IdempotencyHeaders).addError(IdempotencyKeyReused).addError(IdempotencyInFlight)

class ClaimLost extends Data.TaggedError("ClaimLost") {}

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
 * runs in the tenant's RLS transaction and returns the response to send and to store. A failure
 * the API declares with a 4xx status is a rejection: answered as declared and, under a key,
 * recorded so its replay is identical; any other failure is answered unrecorded.
 */
export const idempotentWrite = <E, R>(tenantId: string, write: Effect.Effect<StoredResponse, E, R>) =>
  Effect.gen(function* () {
    const request = yield* HttpServerRequest.HttpServerRequest
    const key = request.headers[idempotencyHeader]
    if (key === undefined) {
      const response = yield* withTenant(tenantId)(write).pipe(Effect.catchIf(isSqlError, databaseDown))
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
      Effect.catchIf(isClaimLost, () =>
        Effect.fail(new IdempotencyInFlight({ detail: "this request's claim on its key was taken over" })),
      ),
      Effect.catchIf(isSqlError, keyedDatabaseDown),
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
 * `write` under a savepoint: a rejection (a declared 4xx) undoes whatever it did and becomes the
 * response to record, while the transaction (and the key's claim) stays usable.
 */
const rejectable = <E, R>(write: Effect.Effect<StoredResponse, E, R>) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const responses = yield* ErrorResponses
    yield* sql`SAVEPOINT idempotent_write`
    return yield* write.pipe(
      Effect.catchAll((e): Effect.Effect<StoredResponse, E | SqlError.SqlError> => {
        const rejection = isSqlError(e)
          ? Option.none()
          : Option.filter(responses.of(e), (r) => r.status < 500)
        return Option.match(rejection, {
          onNone: () => Effect.fail(e),
          onSome: (response) => Effect.as(sql`ROLLBACK TO SAVEPOINT idempotent_write`, response),
        })
      }),
    )
  })

const isClaimLost = (u: unknown): u is ClaimLost => u instanceof ClaimLost
