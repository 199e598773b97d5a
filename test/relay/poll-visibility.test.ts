import { describe, expect } from "bun:test"
import { SqlClient } from "@effect/sql"
import { Deferred, Effect, Fiber, Layer } from "effect"
import { Outbox } from "../../src/engine/outbox.ts"
import { runRelay } from "../../src/engine/relay/index.ts"
import { effectTest } from "../support/effect.ts"
import {
  collectTopic,
  commitEvents,
  relayConfigFor,
  relayDatabase,
  tenantId,
  testTopic,
} from "../support/relay-kit.ts"

describe("poll relay visibility", () => {
  effectTest(
    "holds back younger commits while an older transaction is open, and loses none of its events",
    () =>
      Effect.gen(function* () {
        const db = yield* relayDatabase
        const topic = testTopic()
        const kafka = yield* collectTopic(topic.name)
        yield* runRelay(relayConfigFor(db, { mode: "poll" })).pipe(
          Effect.provide(db.layer),
          Effect.forkScoped,
        )

        const opened = yield* Deferred.make<ReadonlyArray<string>>()
        const release = yield* Deferred.make<void>()
        const long = yield* Effect.gen(function* () {
          const sql = yield* SqlClient.SqlClient
          const outbox = yield* Outbox
          return yield* sql.withTransaction(
            Effect.gen(function* () {
              const ids = yield* outbox.append(
                topic,
                [1, 2, 3].map((n) => ({
                  type: "Happened" as const,
                  aggregateId: "agg-long",
                  tenantId,
                  payload: { aggregate: "agg-long", n },
                })),
              )
              yield* Deferred.succeed(opened, ids)
              yield* Deferred.await(release)
              return ids
            }),
          )
        }).pipe(Effect.provide(Layer.merge(db.layer, Outbox.layer)), Effect.fork)
        yield* Deferred.await(opened)

        // Younger transactions commit (with lower-looking timestamps and higher seqs) meanwhile.
        const younger = (yield* Effect.forEach(
          ["agg-a", "agg-b", "agg-c"],
          (agg) =>
            Effect.forEach([1, 2, 3, 4, 5], (n) =>
              commitEvents(db, topic, agg, [n]).pipe(Effect.zipLeft(Effect.sleep("50 millis"))),
            ),
          { concurrency: "unbounded" },
        )).flat(2)
        yield* Effect.sleep("1500 millis")
        const early = kafka.received.filter((r) => younger.includes(r.headers.id!))
        expect(early).toHaveLength(0)

        yield* Deferred.succeed(release, undefined)
        const longIds = yield* Fiber.join(long)
        yield* kafka.waitFor([...longIds, ...younger])
        yield* kafka.drain
        const ids = new Set(kafka.received.map((r) => r.headers.id))
        expect(ids.size).toBe(longIds.length + younger.length)
      }),
    { timeout: 60_000 },
  )
})
