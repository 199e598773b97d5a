import { describe, expect } from "bun:test"
import { SqlClient } from "@effect/sql"
import { Deferred, Effect } from "effect"
// @ts-expect-error kafkajs ships no types for its internals
import RequestQueue from "kafkajs/src/network/requestQueue/index.js"
import { dbProbe } from "../../src/platform/db.ts"
import { Kafka } from "../../src/platform/kafka.ts"
import { Redis } from "../../src/platform/redis.ts"
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
})
