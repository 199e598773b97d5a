import { describe, expect } from "bun:test"
import { Effect } from "effect"
import type { Producer } from "kafkajs"
import { Kafka } from "../src/platform/kafka.ts"
import { effectTest } from "./support/effect.ts"
import { type FaultCluster, faultCluster, KafkaErrorCode } from "./support/fault-cluster.ts"
import { uniqueId } from "./support/ids.ts"

/** Kafka through our platform layer, pointed at the fault cluster. */
const kafkaOn = (cluster: FaultCluster) => Kafka.make(cluster.brokers, uniqueId("fault-test"))

const endOffsets = (kafka: Kafka["Type"], topic: string) =>
  Effect.gen(function* () {
    const admin = yield* kafka.admin
    const offsets = yield* Effect.promise(() => admin.fetchTopicOffsets(topic))
    return offsets.reduce((n, o) => n + Number(o.high), 0)
  })

/** kafkajs wraps the last failure in KafkaJSNumberOfRetriesExceeded once retries are used up. */
const rootCause = (e: unknown): unknown => {
  const cause = (e as { cause?: unknown }).cause
  return cause ? rootCause(cause) : e
}

const send = (producer: Producer, topic: string, partition: number, value: string) =>
  Effect.tryPromise(() => producer.send({ topic, acks: -1, messages: [{ partition, value }] }))

describe("Kafka fault cluster", () => {
  effectTest("answers each command and rejects an unknown one", () =>
    Effect.gen(function* () {
      const cluster = yield* faultCluster({ brokers: 3 })
      expect(cluster.brokers).toHaveLength(3)
      yield* Effect.promise(() => cluster.rtt(2, 5))
      yield* Effect.promise(() => cluster.partitions(uniqueId("t"), 8))
      const bad = yield* Effect.tryPromise(() => cluster.requestErrors("NoSuchApi", 6, 1)).pipe(Effect.flip)
      expect(String(bad.error)).toContain("unknown api")
    }),
  )

  effectTest(
    "an injected produce error reaches the producer, which retries to exactly one record",
    () =>
      Effect.gen(function* () {
        const cluster = yield* faultCluster({ brokers: 3 })
        const kafka = yield* kafkaOn(cluster)
        const topic = uniqueId("fault-produce")
        yield* Effect.promise(() => cluster.partitions(topic, 4))
        const noRetry = yield* kafka.producer({ retry: { retries: 0 } })
        const patient = yield* kafka.producer()

        // Proof the fault is real: a producer that may not retry sees it.
        yield* Effect.promise(() => cluster.produceErrors(KafkaErrorCode.NOT_LEADER_FOR_PARTITION, 1))
        const seen = yield* send(noRetry, topic, 0, "dropped").pipe(Effect.flip)
        expect(String(seen.error)).toMatch(/leader/i)

        yield* Effect.promise(() => cluster.produceErrors(KafkaErrorCode.NOT_LEADER_FOR_PARTITION, 3))
        const acked = yield* send(patient, topic, 0, "kept")
        expect(acked[0]?.errorCode).toBe(0)
        expect(yield* endOffsets(kafka, topic)).toBe(1)
      }),
    { timeout: 30_000 },
  )

  effectTest(
    "with a partition's leader down, sends fail retriably and succeed once it is back",
    () =>
      Effect.gen(function* () {
        const cluster = yield* faultCluster({ brokers: 3 })
        const kafka = yield* kafkaOn(cluster)
        const topic = uniqueId("fault-down")
        yield* Effect.promise(() => cluster.partitions(topic, 4))
        for (const p of [0, 1, 2, 3]) yield* Effect.promise(() => cluster.leader(topic, p, (p % 3) + 1))
        const noRetry = yield* kafka.producer({ retry: { retries: 0 } })
        const patient = yield* kafka.producer()
        // Warm up: metadata and connections to every leader exist before the fault.
        for (const p of [0, 1, 2, 3]) yield* send(patient, topic, p, "warm")

        yield* Effect.promise(() => cluster.down(1))
        const failed = yield* send(noRetry, topic, 0, "to-the-dead-leader").pipe(Effect.flip)
        expect(rootCause(failed.error)).toMatchObject({ name: "KafkaJSConnectionError", retriable: true })
        // Partitions led by live brokers keep working meanwhile.
        yield* send(patient, topic, 1, "alive")

        // A send to the down leader is retried by the producer and lands after the broker returns.
        let landed = false
        const pending = Effect.runPromise(send(patient, topic, 0, "survives")).then(() => {
          landed = true
        })
        yield* Effect.sleep("1500 millis")
        expect(landed).toBe(false)
        yield* Effect.promise(() => cluster.up(1))
        yield* Effect.promise(() => pending)
        expect(yield* endOffsets(kafka, topic)).toBe(6)
      }),
    { timeout: 60_000 },
  )
})
