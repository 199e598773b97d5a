/**
 * The edge every request passes, in two rings around HttpApi's own error encoding:
 * - `ProblemEdge.layer`, inside it: rejects bodies that are too large or not JSON before any route
 *   runs, and answers the edge's problems — Effect's schema errors become 400 `validation`, unknown
 *   routes 404, unparseable JSON 400. Any other failure goes on to HttpApi, which answers the errors
 *   the application declares (`problemFace`) as declared.
 * - `lastResort`, outside it: what HttpApi could not answer (a defect, an undeclared failure) is a
 *   logged 500, and every 503 carries `Retry-After`. Nothing leaves the API as anything but a response.
 */
import {
  HttpApiBuilder,
  HttpApiError,
  type HttpApp,
  HttpServerRequest,
  HttpServerResponse,
} from "@effect/platform"
import { RequestError, RouteNotFound } from "@effect/platform/HttpServerError"
import { Cause, Effect, Option } from "effect"
import {
  type EdgeProblem,
  InternalProblem,
  isEdgeProblem,
  MalformedBody,
  NoSuchRoute,
  PayloadTooLarge,
  problemResponse,
  retryAfterSeconds,
  UnsupportedMediaType,
  ValidationProblem,
} from "./problem.ts"

export const maxBodyBytes = 64 * 1024
const bodyMethods = new Set(["POST", "PUT", "PATCH"])

const isJson = (contentType: string) => /^application\/([\w.+-]*\+)?json\s*(;|$)/i.test(contentType.trim())

const checkBody = (request: HttpServerRequest.HttpServerRequest): Effect.Effect<Option.Option<EdgeProblem>> =>
  Effect.gen(function* () {
    if (!bodyMethods.has(request.method)) return Option.none()
    const declared = Number(request.headers["content-length"] ?? "0")
    if (declared > maxBodyBytes) return Option.some(tooLarge())
    const contentType = request.headers["content-type"]
    if (contentType !== undefined && !isJson(contentType)) {
      return Option.some(
        new UnsupportedMediaType({ detail: `expected application/json, got ${contentType}` }),
      )
    }
    // Chunked bodies carry no length up front: measure what was read.
    const text = yield* Effect.orElseSucceed(request.text, () => "")
    if (Buffer.byteLength(text) > maxBodyBytes) return Option.some(tooLarge())
    return Option.none()
  })

const tooLarge = () => new PayloadTooLarge({ detail: `request bodies are limited to ${maxBodyBytes} bytes` })

const toProblem = (cause: Cause.Cause<unknown>): Option.Option<EdgeProblem> => {
  const failure = Cause.failureOption(cause)
  if (Option.isSome(failure)) {
    const e = failure.value
    if (isEdgeProblem(e)) return Option.some(e)
    if (e instanceof HttpApiError.HttpApiDecodeError) {
      return Option.some(
        new ValidationProblem({
          detail: e.message,
          errors: e.issues.map((i) => ({ path: i.path.map(String).join("."), message: i.message })),
        }),
      )
    }
    if (e instanceof RouteNotFound) return Option.some(new NoSuchRoute({ detail: "no such route" }))
    if (e instanceof RequestError)
      return Option.some(new MalformedBody({ detail: "the request body could not be read" }))
  }
  const defect = Cause.dieOption(cause)
  if (Option.isSome(defect) && defect.value instanceof RequestError && defect.value.reason === "Decode") {
    return Option.some(new MalformedBody({ detail: "the request body is not valid JSON" }))
  }
  return Option.none()
}

const problemEdge = HttpApiBuilder.middleware((app) =>
  Effect.gen(function* () {
    const request = yield* HttpServerRequest.HttpServerRequest
    const rejected = yield* checkBody(request)
    if (Option.isSome(rejected)) return problemResponse(rejected.value)
    return yield* app
  }).pipe(
    Effect.catchAllCause((cause) =>
      Option.match(toProblem(cause), {
        onSome: (problem) => Effect.succeed(problemResponse(problem)),
        onNone: () => Effect.failCause(cause),
      }),
    ),
  ),
)

export const ProblemEdge = { layer: problemEdge }

/** Wraps the whole app, HttpApi's error encoding included. */
export const lastResort = <E, R>(app: HttpApp.Default<E, R>) =>
  app.pipe(
    Effect.catchAllCause((cause) =>
      Cause.isInterruptedOnly(cause)
        ? Effect.interrupt
        : Effect.as(
            Effect.logError("unhandled error in a route", cause),
            problemResponse(new InternalProblem({ detail: "unexpected error" })),
          ),
    ),
    // Every 503 (a store unavailable, the API overloaded, health unhealthy) says when to come back.
    Effect.map((response) =>
      response.status === 503 && response.headers["retry-after"] === undefined
        ? HttpServerResponse.setHeader(response, "retry-after", String(retryAfterSeconds))
        : response,
    ),
  )
