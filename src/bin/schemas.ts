/**
 * `bun run schemas check|snapshot` — the compatibility gate of HashInsight's event schemas against
 * `schemas/`. It talks to no service, so unlike the other commands it neither reads the platform's
 * config nor starts the embedded stack. Bad arguments print the usage and exit 2; a breaking change
 * exits 1 with one line per problem and a summary.
 */
import { ValidationError } from "@effect/cli"
import { BunContext, BunRuntime } from "@effect/platform-bun"
import { Cause, Console, Effect } from "effect"
import { topics } from "../hashinsight/topics.ts"
import { schemasCli } from "../ops/schemas/cli.ts"

const { run, usage } = schemasCli(topics)

const oneLine = (cause: Cause.Cause<unknown>) => {
  const failure = Cause.squash(cause)
  return `error: ${failure instanceof Error ? failure.message : String(failure)}`
}

BunRuntime.runMain(
  run(process.argv).pipe(
    Effect.catchIf(ValidationError.isValidationError, () =>
      Console.error(usage).pipe(Effect.zipRight(Effect.sync(() => (process.exitCode = 2)))),
    ),
    Effect.tapErrorCause((cause) =>
      Cause.isInterruptedOnly(cause) ? Effect.void : Console.error(oneLine(cause)),
    ),
    Effect.provide(BunContext.layer),
  ),
  { disableErrorReporting: true },
)
