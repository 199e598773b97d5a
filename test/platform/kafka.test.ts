import { describe, expect } from "bun:test"
import { mkdtempSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { SqlClient } from "@effect/sql"
import { Cause, Deferred, Duration, Effect, Exit, Scope } from "effect"
// @ts-expect-error kafkajs ships no types for its internals
import RequestQueue from "kafkajs/src/network/requestQueue/index.js"
import { dbProbe } from "../../src/platform/db.ts"
import { Kafka } from "../../src/platform/kafka.ts"
import { Redis } from "../../src/platform/redis.ts"
import { spawnKafkaMock } from "../../src/platform/stack/kafka.ts"
import { effectTest } from "../support/effect.ts"
import { uniqueId } from "../support/ids.ts"

describe("platform layers", () => {
  effectTest("an idle connection's request queue sleeps: no 1 ms check loop (kafkajs#1556)", () =>
    Effect.gen(function* () {
      const kafka = yield* Kafka
      const producer = yield* kafka.producer()
      yield* Effect.promise(() => producer.send({ topic: uniqueId("idle"), messages: [{ value: "x" }] }))
      const proto = (RequestQueue as { prototype: { checkPendingRequests: () => void } }).prototype
      const check = proto.checkPendingRequests
      let checks = 0
      proto.checkPendingRequests = function (this: unknown) {
        checks += 1
        check.call(this)
      }
      yield* Effect.sleep("300 millis")
      proto.checkPendingRequests = check
      // Unpatched, every connection re-checks about once a millisecond: hundreds in 300 ms.
      expect(checks).toBeLessThan(20)
    }),
  )

  effectTest("a record produced through the Kafka layer is consumed back with key, value and headers", () =>
    Effect.gen(function* () {
      const kafka = yield* Kafka
      const topic = uniqueId("roundtrip")
      const producer = yield* kafka.producer()
      // Create the topic with a first record, then consume from the beginning.
      yield* Effect.promise(() =>
        producer.send({ topic, messages: [{ key: "k1", value: '{"n":1}', headers: { id: "e1" } }] }),
      )
      const got = yield* Deferred.make<{ key: string; value: string; id: string }>()
      const consumer = yield* kafka.consumer({ groupId: uniqueId("roundtrip-group") })
      yield* Effect.promise(() => consumer.subscribe({ topic, fromBeginning: true }))
      yield* Effect.promise(() =>
        consumer.run({
          eachMessage: async ({ message }) => {
            Deferred.unsafeDone(
              got,
              Effect.succeed({
                key: message.key?.toString() ?? "",
                value: message.value?.toString() ?? "",
                id: message.headers?.id?.toString() ?? "",
              }),
            )
          },
        }),
      )
      const record = yield* Deferred.await(got).pipe(Effect.timeout("20 seconds"))
      expect(record).toEqual({ key: "k1", value: '{"n":1}', id: "e1" })
    }),
  )

  effectTest(
    "a keyed record lands on the partition Java's murmur2 puts it on (Kafka's own test vectors)",
    () =>
      Effect.gen(function* () {
        const kafka = yield* Kafka
        const topic = uniqueId("placement")
        // Utils.murmur2 of these keys, from Kafka's UtilsTest.testMurmur2.
        const javaMurmur2: Record<string, number> = {
          "21": -973932308,
          foobar: -790332482,
          "a-little-bit-long-string": -985981536,
          "a-little-bit-longer-string": -1486304829,
          lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8: -58897971,
          abc: 479470107,
        }
        const keys = Object.keys(javaMurmur2)
        const producer = yield* kafka.producer()
        yield* Effect.promise(() =>
          producer.send({ topic, messages: keys.map((key) => ({ key, value: key })) }),
        )
        const admin = yield* kafka.admin
        const partitions = (yield* Effect.promise(() => admin.fetchTopicOffsets(topic))).length
        const placed = new Map<string, number>()
        const all = yield* Deferred.make<void>()
        const consumer = yield* kafka.consumer({ groupId: uniqueId("placement-group") })
        yield* Effect.promise(() => consumer.subscribe({ topic, fromBeginning: true }))
        yield* Effect.promise(() =>
          consumer.run({
            eachMessage: async ({ partition, message }) => {
              placed.set(message.key?.toString() ?? "", partition)
              if (placed.size === keys.length) Deferred.unsafeDone(all, Effect.void)
            },
          }),
        )
        yield* Deferred.await(all).pipe(Effect.timeout("20 seconds"))
        const expected = Object.fromEntries(keys.map((k) => [k, (javaMurmur2[k]! & 0x7fffffff) % partitions]))
        expect(Object.fromEntries(placed)).toEqual(expected)
        // The vectors reach every partition of the mock's four, so a partitioner that only agreed by luck fails.
        expect(new Set(Object.values(expected)).size).toBe(4)
      }),
  )

  effectTest(
    "the Kafka service is not made when kafkajs's request queue is not what the idle-timer patch expects",
    () =>
      Effect.gen(function* () {
        const proto = (RequestQueue as { prototype: { scheduleCheckPendingRequests?: unknown } }).prototype
        const schedule = proto.scheduleCheckPendingRequests
        const made = yield* Effect.exit(
          Effect.scoped(
            Effect.suspend(() => {
              delete proto.scheduleCheckPendingRequests
              return Kafka.make(process.env.KAFKA_BROKERS!.split(","), uniqueId("unpatched"))
            }),
          ),
        ).pipe(Effect.ensuring(Effect.sync(() => (proto.scheduleCheckPendingRequests = schedule))))
        expect(Exit.isFailure(made) && Cause.isDie(made.cause)).toBe(true)
        expect(String(Exit.isFailure(made) && Cause.pretty(made.cause))).toContain("patch did not take")
      }),
  )

  effectTest("every platform layer answers its liveness probe", () =>
    Effect.gen(function* () {
      yield* (yield* Kafka).probe
      yield* (yield* Redis).probe
      yield* dbProbe
      const sql = yield* SqlClient.SqlClient
      const rows = yield* sql<{ wal_level: string }>`SHOW wal_level`
      expect(rows[0]?.wal_level).toBe("logical")
    }),
  )

  effectTest(
    "brokers that hang (stopped, their connections open) with a consumer running: closing the scope is bounded by the release timeout",
    () =>
      Effect.gen(function* () {
        // A cluster of the test's own, stopped with SIGSTOP: connected sockets stay open and nothing answers.
        const cluster = yield* Effect.acquireRelease(
          Effect.promise(() =>
            spawnKafkaMock(join(mkdtempSync(join(tmpdir(), "kafka-hung-")), "kcat.log"), { detached: false }),
          ),
          ({ pid }) =>
            Effect.sync(() => {
              process.kill(pid, "SIGCONT")
              process.kill(pid, "SIGKILL")
            }),
        )
        const scope = yield* Scope.make()
        const kafka = yield* Scope.extend(Kafka.make(cluster.brokers.split(","), uniqueId("hung")), scope)
        const topic = uniqueId("hung")
        const producer = yield* Scope.extend(kafka.producer(), scope)
        yield* Effect.promise(() => producer.send({ topic, messages: [{ value: "x" }] }))
        const consumed = yield* Deferred.make<void>()
        const consumer = yield* Scope.extend(kafka.consumer({ groupId: uniqueId("hung-group") }), scope)
        yield* Effect.promise(() => consumer.subscribe({ topic, fromBeginning: true }))
        yield* Effect.promise(() =>
          consumer.run({ eachMessage: async () => Deferred.unsafeDone(consumed, Effect.void) }),
        )
        yield* Deferred.await(consumed).pipe(Effect.timeout("20 seconds"))
        yield* Scope.extend(kafka.admin, scope)
        yield* kafka.probe
        process.kill(cluster.pid, "SIGSTOP")
        const [took] = yield* Effect.timed(Scope.close(scope, Exit.void))
        // Each release gives up after 10 s; unbounded, the consumer's alone took over 20 s here.
        expect(Duration.toMillis(took)).toBeLessThan(12_000)
      }),
    { timeout: 90_000 },
  )
})
