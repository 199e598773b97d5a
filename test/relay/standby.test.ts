import { describe, expect } from "bun:test"
import { Effect } from "effect"
import { effectTest } from "../support/effect.ts"
import {
  collectTopic,
  commitEvents,
  relayConfigFor,
  relayDatabase,
  spawnRelay,
  testTopic,
} from "../support/relay-kit.ts"

describe.each(["wal", "poll"] as const)("%s relay standby", (mode) => {
  effectTest(
    "waits while another relay is active and publishes the rest once that one is killed",
    () =>
      Effect.gen(function* () {
        const db = yield* relayDatabase
        const topic = testTopic()
        const kafka = yield* collectTopic(topic.name)
        const args = ["--mode", mode, "--slot", relayConfigFor(db).slot, "--standby-poll", "200"]

        const first = yield* spawnRelay(db, args)
        yield* first.waitForLine("relay active")
        const second = yield* spawnRelay(db, args)
        yield* second.waitForLine("relay standby")

        const before = yield* commitEvents(db, topic, "agg-s", [1, 2, 3])
        yield* kafka.waitFor(before)
        expect(second.output()).not.toContain("relay active")

        yield* first.kill("SIGKILL")
        const after = yield* commitEvents(db, topic, "agg-s", [4, 5, 6])
        yield* second.waitForLine("relay active")
        yield* kafka.waitFor(after)
        expect(yield* second.kill("SIGTERM")).toBe(0)
      }),
    { timeout: 90_000 },
  )
})
