/**
 * The domain's errors that every part of it may fail with. Each says what went wrong in its
 * message; how the API answers it is declared with the API (`problems.ts`).
 */
import { Schema } from "effect"

/** What was asked for does not exist for this tenant (another tenant's is as good as missing). */
export class NotFound extends Schema.TaggedError<NotFound>()("NotFound", { message: Schema.String }) {}

/** The change does not apply to the thing in its current state (a retired holding, say). */
export class Conflict extends Schema.TaggedError<Conflict>()("Conflict", { message: Schema.String }) {}
