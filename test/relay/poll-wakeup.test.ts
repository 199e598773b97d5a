import { describe, expect } from "bun:test"
import { Duration, Effect } from "effect"
import { runRelay } from "../../src/engine/relay/index.ts"
import { effectTest } from "../support/effect.ts"
import { collectTopic, commitEvents, relayConfigFor, relayDatabase, testTopic } from "../support/relay-kit.ts"

describe("poll relay wake-up", () => {
  effectTest(
    "publishes a commit within moments although its interval is a minute: the trigger's NOTIFY wakes it",
    () =>
      Effect.gen(function* () {
        const db = yield* relayDatabase
        const topic = testTopic()
        const kafka = yield* collectTopic(topic.name)
        yield* runRelay(relayConfigFor(db, { mode: "poll", pollInterval: Duration.minutes(1) })).pipe(
          Effect.provide(db.layer),
          Effect.forkScoped,
        )
        // Past its first round, the poller now sleeps until woken or a minute has passed.
        yield* Effect.sleep("2 seconds")

        const started = Date.now()
        const ids = yield* commitEvents(db, topic, "agg-w", [1, 2])
        yield* kafka.waitFor(ids, "10 seconds")
        expect(Date.now() - started).toBeLessThan(10_000)
      }),
    { timeout: 60_000 },
  )
})
