import { describe, expect } from "bun:test"
import { SqlClient } from "@effect/sql"
import { Effect, Layer, Schedule } from "effect"
import { Kafka } from "../../src/platform/kafka.ts"
import { effectTest } from "../support/effect.ts"
import { faultCluster, KafkaErrorCode } from "../support/fault-cluster.ts"
import {
  collectTopic,
  commitEvents,
  firstOccurrenceOrder,
  relayDatabase,
  spawnRelay,
  testTopic,
} from "../support/relay-kit.ts"

/** Leaders spread so broker 2 leads half the partitions: most keys depend on it. */
const leaders = [2, 2, 1, 3]
const aggregates = Array.from({ length: 8 }, (_, i) => `agg-${i}`)

describe.each(["wal", "poll"] as const)("%s relay under broker faults", (mode) => {
  effectTest(
    "every committed event reaches Kafka, in order per aggregate, through produce errors and brokers down and up",
    () =>
      Effect.gen(function* () {
        const cluster = yield* faultCluster({ brokers: 3 })
        const db = yield* relayDatabase
        const topic = testTopic()
        yield* Effect.promise(() => cluster.partitions(topic.name, leaders.length))
        for (const [p, b] of leaders.entries()) yield* Effect.promise(() => cluster.leader(topic.name, p, b))
        const slot = `t_${db.name}`.slice(0, 63)
        // The relay CLI pointed at the fault cluster instead of the suite's Kafka.
        const relay = yield* spawnRelay(db, ["--mode", mode, "--slot", slot], {
          KAFKA_BROKERS: cluster.bootstrap,
        })
        const sql = yield* SqlClient.SqlClient.pipe(Effect.provide(yield* Layer.build(db.layer)))

        const committed: Array<string> = []
        const round = (r: number) =>
          Effect.forEach(aggregates, (a) =>
            commitEvents(db, topic, a, [r * 10, r * 10 + 1, r * 10 + 2]).pipe(
              Effect.tap((ids) => Effect.sync(() => committed.push(...ids))),
            ),
          ).pipe(Effect.map((ids) => ids.flat()))

        /** Whether the relay has confirmed (WAL ack / published_at) everything committed so far. */
        const confirmedAll = Effect.gen(function* () {
          if (mode === "poll") {
            const [row] = yield* sql<{ n: number }>`
              SELECT count(*)::int AS n FROM event_outbox WHERE published_at IS NULL`
            return row?.n === 0
          }
          const [row] = yield* sql<{ done: boolean }>`
            SELECT confirmed_flush_lsn >= pg_current_wal_lsn() AS done FROM pg_replication_slots
            WHERE slot_name = ${slot}`
          return row?.done === true
        })
        const awaitConfirmed = confirmedAll.pipe(
          Effect.repeat({ schedule: Schedule.spaced("100 millis"), until: (done) => done }),
          Effect.timeout("45 seconds"),
        )

        yield* round(0)
        yield* awaitConfirmed

        // A flaky broker: produce requests fail with NOT_LEADER a few times in a row.
        yield* Effect.promise(() => cluster.produceErrors(KafkaErrorCode.NOT_LEADER_FOR_PARTITION, 6))
        yield* round(1)
        yield* awaitConfirmed

        // The leader of half the partitions goes away while transactions keep committing: nothing
        // may be confirmed past it until it is back (a healthy relay confirms within milliseconds).
        yield* Effect.promise(() => cluster.down(2))
        yield* round(2)
        yield* Effect.sleep("3 seconds")
        expect(yield* confirmedAll).toBe(false)
        yield* round(3)
        yield* Effect.promise(() => cluster.up(2))

        // The first bootstrap broker goes down too, briefly.
        yield* Effect.promise(() => cluster.down(1))
        yield* round(4)
        yield* Effect.sleep("2 seconds")
        yield* Effect.promise(() => cluster.up(1))
        yield* round(5)
        yield* awaitConfirmed.pipe(Effect.tapError(() => Effect.sync(() => console.error(relay.output()))))
        expect(relay.alive()).toBe(true)

        const kafka = yield* collectTopic(topic.name).pipe(
          Effect.provideService(Kafka, yield* Kafka.make(cluster.brokers, "broker-faults-reader")),
        )
        yield* kafka.waitFor(committed, "45 seconds")
        expect(new Set(kafka.received.map((r) => r.headers.id)).size).toBe(aggregates.length * 3 * 6)
        const order = firstOccurrenceOrder(kafka.received)
        for (const a of aggregates) {
          const ns = order.get(a) ?? []
          expect({ a, ns }).toEqual({ a, ns: [...ns].sort((x, y) => x - y) })
          expect(ns).toHaveLength(18)
        }
      }),
    { timeout: 120_000 },
  )
})
