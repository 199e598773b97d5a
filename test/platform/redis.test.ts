/**
 * The scoped Redis connection's release: QUIT waits behind the commands already sent, so one that
 * never returns (a BLPOP without timeout, a server that stopped answering) would hold shutdown
 * forever; the release gives up after 2 s and disconnects, failing what was pending.
 */
import { describe, expect } from "bun:test"
import { Duration, Effect, Exit, Fiber, Scope } from "effect"
import { Redis } from "../../src/platform/redis.ts"
import { effectTest } from "../support/effect.ts"
import { uniqueId } from "../support/ids.ts"

const redisUrl = process.env.REDIS_URL ?? "redis://127.0.0.1:6379"

/** A Redis of the test's own scope with a command sent that does not return until the connection ends. */
const hangingCommand = (url: string) =>
  Effect.gen(function* () {
    const scope = yield* Scope.make()
    const redis = yield* Scope.extend(Redis.make(url), scope)
    const command = yield* Effect.fork(redis.use("blpop", (c) => c.blpop(uniqueId("never"), 0)))
    yield* Effect.sleep("200 millis")
    return { scope, redis, command }
  })

describe("Redis release", () => {
  effectTest(
    "released while a command blocks: closing takes the 2 s bound, the command fails, the client is ended",
    () =>
      Effect.gen(function* () {
        const { scope, redis, command } = yield* hangingCommand(redisUrl)
        const [took] = yield* Effect.timed(Scope.close(scope, Exit.void))
        expect(Duration.toMillis(took)).toBeLessThan(3_000)
        const outcome = yield* Fiber.await(command).pipe(Effect.timeout("1 second"))
        expect(Exit.isFailure(outcome)).toBe(true)
        expect(redis.client.status).toBe("end")
      }),
  )

  effectTest("released while a server that accepts and never answers has a command pending: the same", () =>
    Effect.gen(function* () {
      const silent = yield* Effect.acquireRelease(
        Effect.sync(() =>
          Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {}, open() {}, close() {} } }),
        ),
        (server) => Effect.sync(() => server.stop(true)),
      )
      const { scope, redis, command } = yield* hangingCommand(`redis://127.0.0.1:${silent.port}`)
      const [took] = yield* Effect.timed(Scope.close(scope, Exit.void))
      expect(Duration.toMillis(took)).toBeLessThan(3_000)
      const outcome = yield* Fiber.await(command).pipe(Effect.timeout("1 second"))
      expect(Exit.isFailure(outcome)).toBe(true)
      expect(redis.client.status).toBe("end")
    }),
  )
})
