/**
 * `it.effect` for bun:test: runs a scoped Effect with the platform layers provided, and on failure
 * throws an error whose message is the pretty-printed Cause (so the test output shows why).
 */
import { test } from "bun:test"
import { Cause, Effect, Exit, Layer, Logger, LogLevel, type Scope } from "effect"
import { Outbox } from "../../src/engine/outbox.ts"
import { Platform } from "../../src/platform/layers.ts"

export const testLayer = Layer.mergeAll(Platform.layer, Outbox.layer)
export type TestServices = Layer.Layer.Success<typeof testLayer>

export const runTest = async <A, E>(self: Effect.Effect<A, E, TestServices | Scope.Scope>): Promise<A> => {
  const exit = await Effect.runPromiseExit(
    self.pipe(
      Effect.scoped,
      Effect.provide(testLayer),
      Logger.withMinimumLogLevel(process.env.TEST_LOG_LEVEL === "debug" ? LogLevel.Debug : LogLevel.Warning),
    ),
  )
  if (Exit.isSuccess(exit)) return exit.value
  throw new Error(Cause.pretty(exit.cause))
}

type Options = { readonly timeout?: number }

const effectTestOf =
  (register: typeof test) =>
  <A, E>(name: string, self: () => Effect.Effect<A, E, TestServices | Scope.Scope>, options: Options = {}) =>
    // 60 s unless the test says otherwise: bun's own default (5 s) is overrun by tests that take
    // 3-4 s here on a loaded CI machine.
    register(name, () => runTest(self()).then(() => undefined), options.timeout ?? 60_000)

export const effectTest = Object.assign(effectTestOf(test), {
  /** Registered as skipped when `condition` holds (e.g. the suite runs on services it cannot stop). */
  skipIf: (condition: boolean) => effectTestOf(condition ? test.skip : test),
})
