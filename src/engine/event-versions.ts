/**
 * An event type's payload history: the Schema of each version, oldest first, and a pure, typed
 * upcast from each version to the next. Writers encode with the latest version and record its
 * number (`eventVersion` header, `event_outbox.event_version`); readers decode a record with the
 * Schema of the version it was written as, then upcast it step by step, so a handler only ever
 * sees the latest type. A record without a version is version 1: everything written before
 * versions existed, and rows Debezium relayed from an outbox without the column.
 *
 * Each upcast's result is validated against the next version's type, so an upcast that breaks a
 * refinement (a positive count, a bounded string) fails the record's decoding instead of handing a
 * handler a value its type promises it never gets.
 */
import { Either, ParseResult, Schema } from "effect"

type AnySchema = Schema.Schema.AnyNoContext
type Upcast = (previous: unknown) => unknown

export interface EventVersions<S extends AnySchema = AnySchema> {
  readonly _tag: "EventVersions"
  /** The Schema writers encode with and handlers are typed by. */
  readonly latest: S
  /** Its version number: 1 for an event type that never changed. */
  readonly version: number
  /** The Schema of version `n` is `schemas[n - 1]`. */
  readonly schemas: ReadonlyArray<AnySchema>
  readonly upcasts: ReadonlyArray<Upcast>
  /** Declares the next version and how a payload of this one becomes it. */
  readonly next: <Next extends AnySchema>(
    schema: Next,
    upcast: (previous: Schema.Schema.Type<S>) => Schema.Schema.Type<Next>,
  ) => EventVersions<Next>
}

const make = <S extends AnySchema>(
  schemas: ReadonlyArray<AnySchema>,
  upcasts: ReadonlyArray<Upcast>,
): EventVersions<S> => ({
  _tag: "EventVersions",
  latest: schemas[schemas.length - 1] as S,
  version: schemas.length,
  schemas,
  upcasts,
  next: (schema, upcast) => make([...schemas, schema], [...upcasts, upcast as Upcast]),
})

/** Starts an event type's history with its version 1. */
export const eventVersions = <S extends AnySchema>(v1: S): EventVersions<S> => make([v1], [])

export const isEventVersions = (u: unknown): u is EventVersions =>
  typeof u === "object" && u !== null && (u as { _tag?: unknown })._tag === "EventVersions"

/** Why a payload of some version did not become a value of the latest. */
export type DecodeProblem =
  | { readonly _tag: "UnknownVersion"; readonly latest: number }
  | { readonly _tag: "Invalid"; readonly reason: string }

const invalid = (reason: string): Either.Either<never, DecodeProblem> =>
  Either.left({ _tag: "Invalid", reason })

const formatted = (version: number, e: ParseResult.ParseError) =>
  `v${version}: ${ParseResult.TreeFormatter.formatErrorSync(e)}`

/** Decodes a payload written as `version` and upcasts it to the latest version. Pure. */
export const decodeVersion = (
  history: EventVersions,
  version: number,
  json: unknown,
): Either.Either<unknown, DecodeProblem> => {
  if (version > history.version) return Either.left({ _tag: "UnknownVersion", latest: history.version })
  const decoded = Schema.decodeUnknownEither(history.schemas[version - 1]!)(json)
  if (Either.isLeft(decoded)) return invalid(formatted(version, decoded.left))
  let value: unknown = decoded.right
  for (let v = version; v < history.version; v++) {
    try {
      value = history.upcasts[v - 1]!(value)
    } catch (e) {
      return invalid(`the upcast from v${v} to v${v + 1} threw: ${String(e)}`)
    }
    const valid = Schema.validateEither(Schema.typeSchema(history.schemas[v]!))(value)
    if (Either.isLeft(valid)) return invalid(`upcast from v${v}, ${formatted(v + 1, valid.left)}`)
  }
  return Either.right(value)
}
