/**
 * Errors at the HTTP edge as RFC 9457 problem documents (`application/problem+json`), each with a
 * stable `type` URI, so the OpenAPI document, the handlers and the bytes on the wire come from one
 * Schema. Two kinds:
 * - the edge's own problems (bad input, authentication, Idempotency-Key, overload, the unexpected):
 *   `Schema.TaggedError`s whose encoded form is the document itself;
 * - an application's errors, declared in its domain with nothing of HTTP: `problemFace` gives one
 *   its document (type, title, status) where the application declares its API. HttpApi answers the
 *   error with it and the idempotency flow records it with it, so the edge renders any such error
 *   without knowing it.
 */
import { HttpApiSchema, HttpServerResponse } from "@effect/platform"
import type { SqlError } from "@effect/sql"
import { Effect, ParseResult, Schema } from "effect"
import { isCommitOutcomeUnknown } from "../platform/db.ts"
import { isPoolExhausted } from "../platform/sql-errors.ts"

export const problemBase = "https://hashinsight.dev/problems"
export const problemContentType = "application/problem+json"

const problemFields = <const Slug extends string, const Status extends number>(
  slug: Slug,
  status: Status,
  title: string,
) => ({
  type: Schema.Literal(`${problemBase}/${slug}` as const).pipe(
    Schema.propertySignature,
    Schema.withConstructorDefault(() => `${problemBase}/${slug}` as const),
  ),
  title: Schema.String.pipe(
    Schema.propertySignature,
    Schema.withConstructorDefault(() => title),
  ),
  status: Schema.Literal(status).pipe(
    Schema.propertySignature,
    Schema.withConstructorDefault(() => status),
  ),
  detail: Schema.String,
})

const asProblem = <A>(status: number, description: string): Schema.Annotations.Schema<A> => ({
  ...HttpApiSchema.annotations<A>({ status, description }),
  [HttpApiSchema.AnnotationEncoding]: { kind: "Json", contentType: problemContentType },
})

/** How an application's error appears as a problem document. */
export interface ProblemFace {
  /** The last segment of the document's `type` URI. */
  readonly slug: string
  readonly status: number
  readonly title: string
  /** What the problem means, for the OpenAPI document. */
  readonly description: string
  /** The document's `_tag` and its schema's name in the OpenAPI document; the error's tag by default. */
  readonly name?: string
}

/**
 * `error`'s problem document as a Schema to declare on endpoints (`addError`): the error's message
 * is the document's `detail`. Only ever encoded — a client's copy of a document is not decoded
 * back into the domain's error.
 */
export const problemFace = <Self extends { readonly _tag: string; readonly message: string }, I, R>(
  error: Schema.Schema<Self, I, R> & { readonly _tag: string },
  face: ProblemFace,
) => {
  const name = face.name ?? error._tag
  const type = `${problemBase}/${face.slug}`
  const Document = Schema.Struct({
    type: Schema.Literal(type),
    title: Schema.String,
    status: Schema.Literal(face.status),
    detail: Schema.String,
    _tag: Schema.Literal(name),
  })
  return Schema.transformOrFail(Document, Schema.typeSchema(error), {
    strict: true,
    decode: (document, _, ast) =>
      ParseResult.fail(new ParseResult.Forbidden(ast, document, "a problem document is only encoded")),
    encode: (e) =>
      ParseResult.succeed({ type, title: face.title, status: face.status, detail: e.message, _tag: name }),
  }).annotations({ identifier: name, ...asProblem(face.status, face.description) })
}

export const FieldIssue = Schema.Struct({ path: Schema.String, message: Schema.String })

export class ValidationProblem extends Schema.TaggedError<ValidationProblem>()(
  "ValidationProblem",
  { ...problemFields("validation", 400, "Request validation failed"), errors: Schema.Array(FieldIssue) },
  asProblem(400, "The request's parameters, headers or body do not match the schema"),
) {}

export class MalformedBody extends Schema.TaggedError<MalformedBody>()(
  "MalformedBody",
  problemFields("malformed-body", 400, "Request body is not valid JSON"),
  asProblem(400, "The request body could not be parsed as JSON"),
) {}

export class Unauthorized extends Schema.TaggedError<Unauthorized>()(
  "Unauthorized",
  problemFields("unauthorized", 401, "Missing or invalid API key"),
  asProblem(401, "No valid `Authorization: Bearer <api key>` header"),
) {}

/** A path the API does not serve: the same document as an application's `not-found`. */
export class NoSuchRoute extends Schema.TaggedError<NoSuchRoute>()(
  "NotFound",
  problemFields("not-found", 404, "Not found"),
  asProblem(404, "No such route"),
) {}

export class IdempotencyInFlight extends Schema.TaggedError<IdempotencyInFlight>()(
  "IdempotencyInFlight",
  problemFields("idempotency-in-flight", 409, "A request with this Idempotency-Key is still in flight"),
  asProblem(409, "The first request with this Idempotency-Key has not finished; retry later"),
) {}

export class PayloadTooLarge extends Schema.TaggedError<PayloadTooLarge>()(
  "PayloadTooLarge",
  problemFields("payload-too-large", 413, "Request body too large"),
  asProblem(413, "The request body exceeds the size limit"),
) {}

export class UnsupportedMediaType extends Schema.TaggedError<UnsupportedMediaType>()(
  "UnsupportedMediaType",
  problemFields("unsupported-media-type", 415, "Unsupported media type"),
  asProblem(415, "Request bodies must be application/json"),
) {}

export class IdempotencyKeyReused extends Schema.TaggedError<IdempotencyKeyReused>()(
  "IdempotencyKeyReused",
  problemFields("idempotency-key-reused", 422, "Idempotency-Key reused with a different request"),
  asProblem(422, "This Idempotency-Key was used for a different request (method, path or body)"),
) {}

export class ServiceUnavailable extends Schema.TaggedError<ServiceUnavailable>()(
  "ServiceUnavailable",
  problemFields("unavailable", 503, "Service temporarily unavailable"),
  asProblem(
    503,
    "A backing store is unavailable; nothing was executed (unless `detail` says the write may have been: retry it with the same Idempotency-Key), retry later",
  ),
) {}

/**
 * A failed database statement as the client's 503, logged: every route answers it the same way. A
 * full pool (every connection busy past the wait) says the API is overloaded, not that the
 * database is down. A write's 503 says that nothing was executed, except when the connection was
 * lost during its COMMIT: then it may have been, and only a retry with the same Idempotency-Key can
 * tell (it answers the stored response if the write committed, and executes it if not).
 */
export const databaseUnavailable =
  (what: string, options: { readonly write?: "keyed" | "unkeyed" } = {}) =>
  (e: SqlError.SqlError) => {
    const overloaded = isPoolExhausted(e)
    const unavailable = overloaded
      ? "the API is overloaded: every database connection stayed busy past the wait"
      : `the ${what} is unavailable`
    const detail =
      options.write === undefined
        ? unavailable
        : isCommitOutcomeUnknown(e)
          ? commitLost[options.write]
          : `${unavailable}; nothing was executed`
    return Effect.zipRight(
      Effect.logWarning(overloaded ? "no database connection came free in time" : `${what} failed`, e),
      Effect.fail(new ServiceUnavailable({ detail })),
    )
  }

const lost = "the database connection was lost while the write committed: it may have been executed"
/** What a write whose COMMIT went unanswered is told, by whether it came with an Idempotency-Key. */
const commitLost = {
  keyed: `${lost}; retry with the same Idempotency-Key to learn its outcome`,
  unkeyed: `${lost}; only writes sent with an Idempotency-Key can be retried safely`,
} as const

/** How long a 503's client is asked to wait before retrying (`Retry-After`, seconds). */
export const retryAfterSeconds = 1

export class InternalProblem extends Schema.TaggedError<InternalProblem>()(
  "InternalProblem",
  problemFields("internal", 500, "Internal server error"),
  asProblem(500, "An unexpected error; it has been logged"),
) {}

/** The edge's own problems: what it answers whatever the application declares. */
export const EdgeProblem = Schema.Union(
  ValidationProblem,
  MalformedBody,
  Unauthorized,
  NoSuchRoute,
  IdempotencyInFlight,
  PayloadTooLarge,
  UnsupportedMediaType,
  IdempotencyKeyReused,
  ServiceUnavailable,
  InternalProblem,
)
export type EdgeProblem = typeof EdgeProblem.Type

export const isEdgeProblem = Schema.is(EdgeProblem)

export const problemResponse = (problem: EdgeProblem) =>
  HttpServerResponse.text(JSON.stringify(Schema.encodeSync(EdgeProblem)(problem)), {
    status: problem.status,
    contentType: problemContentType,
  })
