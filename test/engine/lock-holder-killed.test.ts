import { describe, expect } from "bun:test"
import { join } from "node:path"
import { Duration, Effect, Exit } from "effect"
import { defaultLockOptions, Locks } from "../../src/engine/consumer/lock.ts"
import { Redis } from "../../src/platform/redis.ts"
import { effectTest } from "../support/effect.ts"
import { uniqueId } from "../support/ids.ts"

const holderScript = join(import.meta.dir, "..", "support", "lock-holder.ts")

/** A holder in its own process, once it holds `key`: its process and fencing token. */
const spawnHolder = (key: string) =>
  Effect.gen(function* () {
    const proc = yield* Effect.acquireRelease(
      Effect.sync(() =>
        Bun.spawn([process.execPath, holderScript, key], {
          env: { ...process.env, LOG_LEVEL: "Error", NODE_NO_WARNINGS: "1" },
          stdout: "pipe",
          stderr: "inherit",
        }),
      ),
      (p) => Effect.sync(() => p.kill("SIGKILL")),
    )
    const token = yield* Effect.promise(async () => {
      const reader = proc.stdout.getReader()
      let text = ""
      while (!/held \d+/.test(text)) {
        const { value, done } = await reader.read()
        if (done) throw new Error(`holder exited before holding ${key}: ${text}`)
        text += new TextDecoder().decode(value)
      }
      reader.releaseLock()
      return Number(/held (\d+)/.exec(text)![1])
    }).pipe(Effect.timeout(Duration.seconds(30)))
    return { proc, token }
  })

describe("a lock whose holder died", () => {
  effectTest("is free within one wait after its holder is SIGKILLed, with a newer token", () =>
    Effect.gen(function* () {
      const key = `lock:user:${uniqueId("u")}:portfolio`
      const holder = yield* spawnHolder(key)
      holder.proc.kill("SIGKILL")
      yield* Effect.promise(() => holder.proc.exited)
      const locks = yield* Locks.make(defaultLockOptions)
      const started = Date.now()
      // One attempt of the consumer's: the lock must be had within the default wait, or the
      // event's retry budget goes on a lock nobody holds any more.
      const token = yield* locks.withLock(key, (held) => Effect.succeed(held.token))
      expect(token).toBeGreaterThan(holder.token)
      expect(Date.now() - started).toBeLessThan(Duration.toMillis(defaultLockOptions.wait))
    }),
  )

  effectTest("a live holder keeps its lock past the ttl, however long its work takes", () =>
    Effect.gen(function* () {
      const key = `lock:user:${uniqueId("u")}:portfolio`
      const holder = yield* spawnHolder(key)
      yield* Effect.sleep(Duration.sum(defaultLockOptions.ttl, Duration.seconds(1)))
      const contender = yield* Locks.make({ ...defaultLockOptions, wait: Duration.seconds(1) })
      const exit = yield* Effect.exit(contender.withLock(key, () => Effect.void))
      expect(Exit.isFailure(exit)).toBe(true)
      if (Exit.isFailure(exit)) expect(JSON.stringify(exit.cause)).toContain("LockContended")
      holder.proc.kill("SIGKILL")
    }),
  )

  effectTest(
    "a holder stopped past its ttl loses the lock to a contender and, resumed, cannot take it back",
    () =>
      Effect.gen(function* () {
        const key = `lock:user:${uniqueId("u")}:portfolio`
        const holder = yield* spawnHolder(key)
        const redis = yield* Redis
        holder.proc.kill("SIGSTOP")
        const locks = yield* Locks.make(defaultLockOptions)
        const token = yield* locks.withLock(key, (held) =>
          Effect.gen(function* () {
            const ours = yield* redis.use("get", (c) => c.get(key))
            holder.proc.kill("SIGCONT")
            // A renewal round of the resumed holder, and one of ours.
            yield* Effect.sleep(Duration.sum(defaultLockOptions.renewEvery, Duration.seconds(1)))
            expect(yield* redis.use("get", (c) => c.get(key))).toBe(ours)
            return held.token
          }),
        )
        expect(token).toBeGreaterThan(holder.token)
      }),
  )
})
