/**
 * The supervisor's stop: SIGTERM, 15 s to drain, then SIGKILL. The stop runs as a release, which
 * is uninterruptible, so the drain's time limit only holds if the wait is made interruptible.
 */
import { describe, expect } from "bun:test"
import { Duration, Effect, Fiber } from "effect"
import { supervise } from "../../src/platform/supervisor.ts"
import { effectTest } from "../support/effect.ts"

describe("supervisor", () => {
  effectTest(
    "a child that ignores SIGTERM is SIGKILLed after the 15 s drain, and the supervisor stops",
    () =>
      Effect.gen(function* () {
        const started = Date.now()
        const supervising = yield* Effect.fork(
          supervise([
            {
              name: "stubborn",
              // Gone on its own after 30 s, so a supervisor that never kills it leaves no orphan.
              argv: ["-e", "process.on('SIGTERM', () => {}); setTimeout(() => {}, 30_000)"],
            },
          ]),
        )
        // Long enough for the child to start and install its handler.
        yield* Effect.sleep("1500 millis")
        const [took] = yield* Effect.timed(Fiber.interrupt(supervising))
        expect(Duration.toMillis(took)).toBeGreaterThan(14_000)
        expect(Duration.toMillis(took)).toBeLessThan(18_000)
        expect(Date.now() - started).toBeLessThan(25_000)
      }),
    { timeout: 45_000 },
  )
})
