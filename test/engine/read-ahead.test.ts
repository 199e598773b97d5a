import { describe, expect, test } from "bun:test"
import { SqlClient } from "@effect/sql"
import { Duration, Effect, Metric } from "effect"
import { defineConsumer, on } from "../../src/engine/consumer/definition.ts"
import { groupJoins } from "../../src/engine/consumer/metrics.ts"
import { makeReadAhead } from "../../src/engine/consumer/read-ahead.ts"
import { Kafka } from "../../src/platform/kafka.ts"
import {
  committedCount,
  effectCounts,
  ensureEffectsTable,
  eventually,
  produce,
  startMember,
  workRecord,
  workTopic,
  writeEffect,
} from "../support/consumer-fixtures.ts"
import { effectTest } from "../support/effect.ts"
import { uniqueId } from "../support/ids.ts"

/** Work that records what it was given and finishes when told to. */
const recorder = () => {
  const runs: Array<{ key: string; items: ReadonlyArray<string>; stale: () => boolean }> = []
  const finish: Array<(error?: unknown) => void> = []
  const work = (key: string, items: ReadonlyArray<string>, stale: () => boolean) =>
    new Promise<void>((resolve, reject) => {
      runs.push({ key, items, stale })
      finish.push((error) => (error === undefined ? resolve() : reject(error)))
    })
  return { runs, finish, work }
}

const tick = () => new Promise((r) => setTimeout(r, 0))
const fresh = (items: ReadonlyArray<string>) => ({ items, stale: () => false })
const settled = async (p: Promise<unknown>) => {
  let done = false
  void p.then(() => (done = true))
  await tick()
  return done
}

describe("read-ahead", () => {
  test("a batch starts at once and the push returns; what arrives meanwhile is the next piece, in order", async () => {
    const { runs, finish, work } = recorder()
    const lanes = makeReadAhead(work, { capacity: 100, concurrency: 4, onError: () => {} })
    expect(await settled(lanes.push("p0", fresh(["a"])))).toBe(true)
    expect(runs.map((r) => r.items)).toEqual([["a"]])
    // Fetching went on while "a" was processed.
    expect(await settled(lanes.push("p0", fresh(["b", "c"])))).toBe(true)
    expect(await settled(lanes.push("p0", fresh(["d"])))).toBe(true)
    expect(runs.length).toBe(1)
    finish[0]!()
    await tick()
    expect(runs.map((r) => r.items)).toEqual([["a"], ["b", "c", "d"]])
    finish[1]!()
    await tick()
    expect(runs.length).toBe(2)
  })

  test("a full lane holds its fetcher back until the worker takes what it holds", async () => {
    const { runs, finish, work } = recorder()
    const lanes = makeReadAhead(work, { capacity: 3, concurrency: 4, onError: () => {} })
    await lanes.push("p0", fresh(["a"]))
    await lanes.push("p0", fresh(["b", "c"]))
    const full = lanes.push("p0", fresh(["d"]))
    expect(await settled(full)).toBe(false)
    finish[0]!()
    expect(await settled(full)).toBe(true)
    expect(runs[1]!.items).toEqual(["b", "c", "d"])
  })

  test("no more lanes work at once than the concurrency allows, and a busy lane gives its turn up", async () => {
    const { runs, finish, work } = recorder()
    const lanes = makeReadAhead(work, { capacity: 100, concurrency: 1, onError: () => {} })
    await lanes.push("p0", fresh(["a1"]))
    await lanes.push("p1", fresh(["b1"]))
    await lanes.push("p0", fresh(["a2"]))
    await tick()
    expect(runs.map((r) => r.key)).toEqual(["p0"])
    finish[0]!()
    await tick()
    expect(runs.map((r) => `${r.key}:${r.items}`)).toEqual(["p0:a1", "p1:b1"])
    finish[1]!()
    await tick()
    expect(runs.map((r) => `${r.key}:${r.items}`)).toEqual(["p0:a1", "p1:b1", "p0:a2"])
    finish[2]!()
  })

  test("a stale batch is dropped when its turn comes, and a stale piece sees it", async () => {
    const { runs, finish, work } = recorder()
    const lanes = makeReadAhead(work, { capacity: 100, concurrency: 4, onError: () => {} })
    let revoked = false
    await lanes.push("p0", { items: ["a"], stale: () => revoked })
    await lanes.push("p0", { items: ["b"], stale: () => revoked })
    revoked = true
    expect(runs[0]!.stale()).toBe(true)
    finish[0]!()
    await tick()
    expect(runs.length).toBe(1)
    await lanes.push("p0", fresh(["c"]))
    expect(runs.map((r) => r.items)).toEqual([["a"], ["c"]])
    finish[1]!()
  })

  test("close drops what was only fetched and resolves once the work in progress is done", async () => {
    const { runs, finish, work } = recorder()
    const lanes = makeReadAhead(work, { capacity: 100, concurrency: 4, onError: () => {} })
    await lanes.push("p0", fresh(["a"]))
    await lanes.push("p0", fresh(["b"]))
    const closing = lanes.close()
    expect(runs[0]!.stale()).toBe(true)
    expect(await settled(closing)).toBe(false)
    finish[0]!()
    expect(await settled(closing)).toBe(true)
    await lanes.push("p0", fresh(["c"]))
    await tick()
    expect(runs.map((r) => r.items)).toEqual([["a"]])
  })

  test("failed work is reported and stops the lanes, so nothing fetched past it runs", async () => {
    const { runs, finish, work } = recorder()
    const errors: Array<unknown> = []
    const lanes = makeReadAhead(work, { capacity: 100, concurrency: 4, onError: (e) => errors.push(e) })
    await lanes.push("p0", fresh(["a"]))
    await lanes.push("p0", fresh(["b"]))
    await lanes.push("p1", fresh(["x"]))
    finish[0]!(new Error("connection lost"))
    await tick()
    expect(errors).toEqual([new Error("connection lost")])
    expect(runs.map((r) => r.items)).toEqual([["a"], ["x"]])
    expect(runs[1]!.stale()).toBe(true)
    finish[1]!()
  })
})

describe("read-ahead in a member", () => {
  effectTest(
    "a backlog of one-record batches on one partition is taken in a few transactions, each event once and in order",
    () =>
      Effect.gen(function* () {
        yield* ensureEffectsTable
        const topic = workTopic()
        const group = uniqueId("read-ahead-group")
        const consumer = defineConsumer({
          name: "read-ahead-test",
          group,
          subscriptions: [
            on(topic, {
              // Slow enough that fetching gets ahead of it.
              Work: (p, meta) =>
                Effect.zipRight(
                  writeEffect(group, meta.eventId, meta.tenantId, p.label),
                  Effect.sleep("10 millis"),
                ),
            }),
          ],
        })
        // Each send is its own record batch, and the mock hands out one record batch per fetch:
        // processed inside the fetch loop, that was one transaction per event.
        const records = Array.from({ length: 120 }, (_, n) =>
          workRecord({ label: String(n).padStart(3, "0") }, { key: "one-partition" }),
        )
        for (const r of records) yield* produce(topic.name, [r])
        yield* startMember(consumer)
        yield* eventually(Effect.map(committedCount(group, topic.name), (n) => n === records.length))

        const effects = yield* effectCounts(group)
        expect(records.every((r) => effects.get(r.id) === 1)).toBe(true)
        const sql = yield* SqlClient.SqlClient
        const order = yield* sql<{ label: string }>`
          SELECT label FROM consumer_test_effects WHERE consumer_group = ${group} ORDER BY at`
        expect(order.map((r) => r.label)).toEqual(records.map((r) => JSON.parse(r.value!).label))
        const [tx] = yield* sql<{ n: number }>`
          SELECT count(DISTINCT processed_at)::int AS n FROM event_inbox WHERE consumer_group = ${group}`
        expect(tx!.n).toBeLessThanOrEqual(40)
      }),
    { timeout: 60_000 },
  )

  effectTest(
    "units of 10 s with every lane full do not get the member rebalanced out (6 s session): it heartbeats while it waits for room",
    () =>
      Effect.gen(function* () {
        yield* ensureEffectsTable
        const topic = workTopic()
        const group = uniqueId("slow-unit-group")
        let slowRunning = 0
        const consumer = defineConsumer({
          name: "slow-unit-test",
          group,
          subscriptions: [
            on(topic, {
              Work: (p, meta) =>
                Effect.zipRight(
                  writeEffect(group, meta.eventId, meta.tenantId, p.label),
                  p.label.endsWith("-slow")
                    ? Effect.zipRight(
                        Effect.sync(() => slowRunning++),
                        Effect.sleep("10 seconds"),
                      )
                    : Effect.void,
                ),
            }),
          ],
        })
        // Every partition: a slow event first; once the member runs it, more than a lane holds, so
        // each fetch loop has to wait for room until the slow unit is done.
        const kafka = yield* Kafka
        const producer = yield* kafka.producer()
        const batch = (labels: (i: number) => string, n: number) =>
          [0, 1, 2, 3].flatMap((partition) =>
            Array.from({ length: n }, (_, i) => ({
              ...workRecord({ label: `${partition}-${labels(i)}` }),
              partition,
            })),
          )
        const slow = batch(() => "slow", 1)
        const behind = batch((i) => String(i), 8)
        const records = [...slow, ...behind]
        yield* Effect.promise(() => producer.send({ topic: topic.name, messages: slow }))
        const joins = Metric.tagged(groupJoins, "group", group)
        // Lanes of 4 records, each partition's chunks in a transaction of their own, at once.
        yield* startMember(consumer, {
          maxChunk: 4,
          groupBelow: 1,
          sessionTimeoutMs: 6_000,
          heartbeatIntervalMs: 1_000,
        })
        yield* eventually(Effect.sync(() => slowRunning === 4))
        yield* Effect.promise(() => producer.send({ topic: topic.name, messages: behind }))
        yield* eventually(
          Effect.map(effectCounts(group), (c) => c.size === records.length),
          Duration.seconds(60),
        )
        // Committing needs a membership the group still knows: one rebalanced out meanwhile commits
        // only after it joined again.
        yield* eventually(Effect.map(committedCount(group, topic.name), (n) => n === records.length))
        const effects = yield* effectCounts(group)
        expect(records.filter((r) => effects.get(r.id) !== 1)).toEqual([])
        expect((yield* Metric.value(joins)).count).toBe(1)
      }),
    { timeout: 90_000 },
  )
})
