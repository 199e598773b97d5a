import { describe, expect } from "bun:test"
import { Effect } from "effect"
import { effectTest } from "../support/effect.ts"
import {
  collectTopic,
  firstOccurrenceOrder,
  relayConfigFor,
  relayDatabase,
  spawnRelay,
  startWriters,
  testTopic,
} from "../support/relay-kit.ts"

const aggregates = ["agg-0", "agg-1", "agg-2", "agg-3"]
const kills = 10

describe.each(["wal", "poll"] as const)("%s relay killed with SIGKILL", (mode) => {
  effectTest(
    `${kills} kills at random points while writers run lose no committed event and keep per-aggregate order`,
    () =>
      Effect.gen(function* () {
        const db = yield* relayDatabase
        const topic = testTopic()
        const kafka = yield* collectTopic(topic.name)
        const args = [
          "--mode",
          mode,
          "--slot",
          relayConfigFor(db).slot,
          "--standby-poll",
          "200",
          "--poll-interval",
          "100",
        ]

        const { written, stop } = yield* startWriters(db, topic, aggregates)

        for (let i = 0; i < kills; i++) {
          const relay = yield* spawnRelay(db, args)
          yield* relay.waitForLine("relay active")
          yield* Effect.sleep(`${100 + Math.floor(Math.random() * 1400)} millis`)
          yield* relay.kill("SIGKILL")
        }
        yield* stop

        const last = yield* spawnRelay(db, args)
        yield* last.waitForLine("relay active")
        yield* kafka.waitFor(written, "60 seconds")
        expect(yield* last.kill("SIGTERM")).toBe(0)
        yield* kafka.drain

        const ids = kafka.received.map((r) => r.headers.id!)
        const missing = written.filter((id) => !ids.includes(id))
        expect(missing).toEqual([])
        for (const [agg, ns] of firstOccurrenceOrder(kafka.received)) {
          expect({ agg, ns }).toEqual({ agg, ns: [...ns].sort((a, b) => a - b) })
        }
        console.log(
          `${mode} relay, ${kills} SIGKILLs: ${written.length} events committed, ${kafka.received.length} records in Kafka, ${kafka.received.length - new Set(ids).size} duplicates`,
        )
      }),
    { timeout: 150_000 },
  )
})
