/**
 * The lag monitor against the real Kafka protocol: a group paused (its member not running) while
 * records pile up on one partition, judged by health and shown by the gauges, then resumed.
 */
import { describe, expect } from "bun:test"
import { Duration, Effect, Fiber, Layer, Option } from "effect"
import { defineConsumer, on } from "../../src/engine/consumer/definition.ts"
import { Health } from "../../src/observe/health.ts"
import { LagMonitor } from "../../src/observe/lag.ts"
import { prometheusText } from "../../src/observe/prometheus.ts"
import { Kafka } from "../../src/platform/kafka.ts"
import {
  committedCount,
  eventually,
  startMember,
  workRecord,
  workTopic,
} from "../support/consumer-fixtures.ts"
import { effectTest } from "../support/effect.ts"
import { uniqueId } from "../support/ids.ts"
import { gaugeOf } from "../support/prometheus.ts"

interface PartitionFigures {
  readonly partition: number
  readonly end: number
  readonly committed: number | null
  readonly lag: number
  readonly lagSeconds: number
  readonly stalled: boolean
}

/** `n` records on partition 0 of `topic`, in sends of 1,000. */
const produceToPartition0 = (topic: string, n: number) =>
  Effect.gen(function* () {
    const producer = yield* (yield* Kafka).producer()
    for (let sent = 0; sent < n; sent += 1000) {
      const messages = Array.from({ length: Math.min(1000, n - sent) }, (_, i) => ({
        ...workRecord({ label: `r-${sent + i}` }),
        partition: 0,
      }))
      yield* Effect.promise(() => producer.send({ topic, messages }))
    }
  }).pipe(Effect.scoped)

describe("consumer lag", () => {
  effectTest(
    "a paused group 1,200 behind on one partition: the gauge is end minus committed, health warning with total 1,200, critical past 10,000, stalled, lag in seconds growing; healthy again once it resumes",
    () =>
      Effect.gen(function* () {
        const topic = workTopic()
        const group = uniqueId("lag-group")
        const watched = [{ group, topics: [topic.name] }]
        const def = defineConsumer({
          name: "lag",
          group,
          subscriptions: [on(topic, { Work: () => Effect.void })],
        })
        const context = yield* Layer.build(
          Layer.provide(
            Health.layer({ groups: watched, checks: {} }),
            LagMonitor.layer({
              groups: watched,
              every: Duration.millis(200),
              stallAfter: Duration.seconds(3),
            }),
          ),
        )
        const check = Effect.map(
          Effect.flatMap(Health, (h) => h.report),
          (r) => r.checks.kafka_consumer! as Record<string, unknown> & { status: string; detail?: string },
        ).pipe(Effect.provide(context))
        const partition0 = (c: Record<string, unknown>) =>
          (
            (c.groups as Record<string, { partitions: ReadonlyArray<PartitionFigures> }>)[group]
              ?.partitions ?? []
          ).find((p) => p.partition === 0)

        // The group consumes its first 50 records and commits them, then its member stops.
        yield* produceToPartition0(topic.name, 50)
        const first = yield* startMember(def)
        yield* eventually(Effect.map(committedCount(group, topic.name), (n) => n === 50))
        yield* Fiber.interrupt(first)

        yield* produceToPartition0(topic.name, 1_200)
        yield* eventually(Effect.map(check, (c) => c.totalLag === 1_200))
        const warning = yield* check
        expect(warning).toMatchObject({ status: "degraded", level: "warning", totalLag: 1_200 })
        expect(partition0(warning)).toMatchObject({ end: 1_250, committed: 50, lag: 1_200 })
        expect(warning.detail).toContain(`${group} is 1200 records behind (warning)`)
        const labels = { group, topic: topic.name, partition: "0" }
        const text = yield* prometheusText
        expect(gaugeOf(text, "consumer_lag_offsets", labels)).toBe(1_200)
        expect(gaugeOf(text, "consumer_group_lag_offsets", { group })).toBe(1_200)
        expect(gaugeOf(text, "consumer_group_lag_level", { group })).toBe(1)

        // While paused, its lag in seconds grows with the clock, and after 3 s without a commit the
        // partition is stalled.
        const before = partition0(warning)!.lagSeconds
        yield* Effect.sleep(Duration.millis(3_500))
        const later = yield* check
        expect(partition0(later)!.lagSeconds).toBeGreaterThan(before + 3)
        expect(gaugeOf(yield* prometheusText, "consumer_lag_seconds", labels)).toBeGreaterThan(before + 3)
        expect(partition0(later)!.stalled).toBe(true)
        expect(later.detail).toContain(`${group} is stalled on ${topic.name}/0`)

        yield* produceToPartition0(topic.name, 9_000)
        yield* eventually(Effect.map(check, (c) => c.totalLag === 10_200))
        expect(yield* check).toMatchObject({ status: "degraded", level: "critical", totalLag: 10_200 })
        expect(gaugeOf(yield* prometheusText, "consumer_group_lag_level", { group })).toBe(2)

        // Resumed: the member catches up, and the check is healthy again. (Healthy alone comes early:
        // under 1,000 behind is `ok`, so it waits for the member to have caught up.)
        yield* startMember(def)
        yield* eventually(
          Effect.map(check, (c) => c.status === "healthy" && c.totalLag === 0),
          Duration.seconds(45),
        )
        const healthy = yield* check
        expect(healthy).toMatchObject({ level: "ok", totalLag: 0 })
        expect(partition0(healthy)).toMatchObject({ end: 10_250, committed: 10_250, lag: 0, stalled: false })
      }),
    { timeout: 120_000 },
  )

  effectTest(
    "records that arrive after the partition was quiet for a while are as old as they are, not spread over the quiet time",
    () =>
      Effect.gen(function* () {
        const topic = workTopic()
        const group = uniqueId("lag-quiet")
        const watched = [{ group, topics: [topic.name] }]
        const context = yield* Layer.build(LagMonitor.layer({ groups: watched, every: Duration.millis(200) }))
        const partition0 = Effect.flatMap(LagMonitor, (m) => m.latest).pipe(
          Effect.provide(context),
          Effect.map((r) =>
            Option.getOrUndefined(r.sample)?.groups[0]?.partitions.find((p) => p.partition === 0),
          ),
        )
        // The topic exists and the monitor has seen its end at 10 for 3 s.
        yield* produceToPartition0(topic.name, 10)
        yield* eventually(Effect.map(partition0, (p) => p?.lag === 10))
        yield* Effect.sleep(Duration.seconds(3))
        yield* produceToPartition0(topic.name, 100)
        yield* eventually(Effect.map(partition0, (p) => p?.lag === 110))
        // The first ten were there when the monitor started: a lower bound. The group has committed
        // nothing, so its lag starts at the first record: the ten are what is timed.
        expect((yield* partition0)!.lowerBound).toBe(true)

        // Committed past the ten, the lag starts at the hundred that came after the quiet time.
        const first = yield* startMember(
          defineConsumer({
            name: "lag-quiet",
            group,
            subscriptions: [on(topic, { Work: () => Effect.void })],
          }),
        )
        yield* eventually(Effect.map(committedCount(group, topic.name), (n) => n === 110))
        yield* Fiber.interrupt(first)
        const sentAt = Date.now()
        yield* produceToPartition0(topic.name, 100)
        yield* eventually(Effect.map(partition0, (p) => p?.lag === 100))
        const p = (yield* partition0)!
        expect(p.lowerBound).toBe(false)
        expect(p.lagSeconds).toBeLessThan((Date.now() - sentAt) / 1000 + 0.5)
      }),
    { timeout: 60_000 },
  )
})
