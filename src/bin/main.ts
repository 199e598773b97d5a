/**
 * The one way an entry point runs: fill the env from the embedded stack where it is unset, provide
 * the platform layer it needs, honour LOG_LEVEL, interrupt cleanly on SIGINT/SIGTERM (so scopes
 * drain), and report a failure as one readable line with exit code 1.
 */
import { BunRuntime } from "@effect/platform-bun"
import { Cause, Effect, type Layer, Logger } from "effect"
import { type AppConfig, withConfiguredLogLevel } from "../platform/config.ts"
import { ensureEnv } from "../platform/stack/index.ts"

export const runMain = <A, E, R, LE>(
  program: Effect.Effect<A, E, R | AppConfig>,
  layer: Layer.Layer<R | AppConfig, LE, never>,
) => {
  const main = Effect.promise(() => ensureEnv()).pipe(
    Effect.zipRight(program.pipe(withConfiguredLogLevel, Effect.provide(layer))),
    Effect.tapErrorCause((cause) =>
      Cause.isInterruptedOnly(cause) ? Effect.void : Effect.sync(() => console.error(oneLine(cause))),
    ),
    Effect.provide(Logger.pretty),
  )
  BunRuntime.runMain(main, { disableErrorReporting: true })
}

const oneLine = (cause: Cause.Cause<unknown>): string => {
  const failure = Cause.squash(cause)
  return `error: ${failure instanceof Error ? failure.message : String(failure)}`
}
