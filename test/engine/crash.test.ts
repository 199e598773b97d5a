import { describe, expect } from "bun:test"
import { join } from "node:path"
import type { Subprocess } from "bun"
import { Duration, Effect, Fiber } from "effect"
import {
  committedCount,
  effectCounts,
  ensureEffectsTable,
  eventually,
  produce,
  workRecord,
  workTopic,
} from "../support/consumer-fixtures.ts"
import { effectTest } from "../support/effect.ts"
import { uniqueId } from "../support/ids.ts"

const memberScript = join(import.meta.dir, "../support/consumer-process.ts")

describe("consumer crashes", () => {
  effectTest(
    "3 members SIGKILLed 10 times at random while events flow: every event's effect happens exactly once",
    () =>
      Effect.gen(function* () {
        yield* ensureEffectsTable
        const topic = workTopic()
        const group = uniqueId("crash-group")
        const spawnMember = () =>
          Bun.spawn([process.execPath, memberScript, topic.aggregatetype, group], {
            env: { ...process.env, LOG_LEVEL: "Error", NODE_NO_WARNINGS: "1" },
            stdout: "ignore",
            stderr: "inherit",
          })
        const members: Array<Subprocess> = []
        yield* Effect.addFinalizer(() =>
          Effect.sync(() => {
            for (const m of members) m.kill("SIGKILL")
          }),
        )

        const ids: Array<string> = []
        const rounds = 100
        const producer = yield* Effect.fork(
          Effect.gen(function* () {
            for (let round = 0; round < rounds; round++) {
              const batch = Array.from({ length: 20 }, (_, i) => workRecord({ label: `r${round}-${i}` }))
              ids.push(...batch.map((r) => r.id))
              yield* produce(topic.name, batch)
              yield* Effect.sleep(Duration.millis(100))
            }
          }),
        )
        for (let i = 0; i < 3; i++) members.push(spawnMember())

        yield* Effect.sleep(Duration.seconds(2))
        for (let kill = 0; kill < 10; kill++) {
          yield* Effect.sleep(Duration.millis(400 + Math.random() * 1200))
          const alive = members.filter((m) => m.exitCode === null && m.signalCode === null)
          const victim = alive[Math.floor(Math.random() * alive.length)]!
          victim.kill("SIGKILL")
          yield* Effect.promise(() => victim.exited)
          members.push(spawnMember())
        }
        yield* Fiber.join(producer)

        yield* eventually(
          Effect.map(effectCounts(group), (counts) => counts.size === ids.length),
          Duration.seconds(60),
        )
        const counts = yield* effectCounts(group)
        const wrong = ids.filter((id) => counts.get(id) !== 1)
        expect(wrong).toEqual([])
        expect(counts.size).toBe(ids.length)

        // The survivors drain on SIGTERM: offsets committed, clean exit.
        yield* eventually(
          Effect.map(committedCount(group, topic.name), (n) => n === ids.length),
          Duration.seconds(30),
        )
        const survivors = members.filter((m) => m.exitCode === null && m.signalCode === null)
        expect(survivors.length).toBe(3)
        for (const m of survivors) m.kill("SIGTERM")
        const codes = yield* Effect.promise(() => Promise.all(survivors.map((m) => m.exited)))
        expect(codes).toEqual([0, 0, 0])
      }),
    { timeout: 120_000 },
  )
})
