/**
 * Events that need locks are handled a chunk at a time: the chunk's distinct keys are taken together,
 * its handlers run in one transaction, every key is fenced at commit. Work deferred with
 * `beforeCommit` runs once per key per unit, inside the transaction.
 */
import { describe, expect } from "bun:test"
import { SqlClient } from "@effect/sql"
import { Effect } from "effect"
import { beforeCommit, withUnitLocks } from "../../src/engine/consumer/before-commit.ts"
import { defineConsumer, on } from "../../src/engine/consumer/definition.ts"
import { Fatal, FencingRejected } from "../../src/engine/consumer/errors.ts"
import { fenceKey, type Locks } from "../../src/engine/consumer/lock.ts"
import { decodeRetryPolicy } from "../../src/engine/consumer/retry.ts"
import { Redis } from "../../src/platform/redis.ts"
import {
  dlqRows,
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

const noRetries = decodeRetryPolicy({ maxAttempts: 1, baseDelayMs: 0, factor: 1, capMs: 0, jitter: 0 })

const labelsOf = (group: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.map(
      sql<{ label: string }>`SELECT label FROM consumer_test_effects
                             WHERE consumer_group = ${group} ORDER BY at`,
      (rows) => rows.map((r) => r.label),
    ),
  )

describe("locked chunks", () => {
  effectTest(
    "one partition's locked events share one acquisition per key, run in order, are fenced and released; deferred work runs once per key",
    () =>
      Effect.gen(function* () {
        yield* ensureEffectsTable
        const topic = workTopic()
        const group = uniqueId("lock-chunk")
        const users = ["a", "b", "c"].map((u) => uniqueId(u))
        const keyOf = (label: string) => `lock:user:${users[Number(label.split("-")[1]) % 3]}:chunk`
        const tokens = new Map<string, Set<number>>()
        const consumer = defineConsumer({
          name: "lock-chunk",
          group,
          subscriptions: [
            on(
              topic,
              {
                Work: (p, meta) =>
                  Effect.gen(function* () {
                    expect(meta.lock?.key).toBe(keyOf(p.label))
                    const seen = tokens.get(meta.lock!.key) ?? new Set()
                    tokens.set(meta.lock!.key, seen.add(meta.lock!.token))
                    yield* writeEffect(group, meta.eventId, meta.tenantId, p.label)
                    yield* beforeCommit(
                      meta.lock!.key,
                      writeEffect(group, crypto.randomUUID(), meta.tenantId, `deferred ${meta.lock!.key}`),
                    )
                  }),
              },
              { lockKey: (p) => keyOf(p.label) },
            ),
          ],
        })
        const records = Array.from({ length: 60 }, (_, i) => workRecord({ label: `e-${i}` }, { key: "p" }))
        yield* produce(topic.name, records)
        yield* startMember(consumer)
        yield* eventually(Effect.map(effectCounts(group), (c) => c.size >= records.length + 3))

        const labels = yield* labelsOf(group)
        const events = labels.filter((l) => l.startsWith("e-"))
        expect(events).toEqual(records.map((_, i) => `e-${i}`))
        const counts = yield* effectCounts(group)
        for (const r of records) expect(counts.get(r.id)).toBe(1)
        // Fewer acquisitions than events: the chunk took each key once for all of its events.
        const acquisitions = [...tokens.values()].reduce((n, s) => n + s.size, 0)
        expect(acquisitions).toBeLessThan(records.length / 2)
        // Deferred work ran once per key and acquisition, never once per event.
        const deferred = labels.filter((l) => l.startsWith("deferred "))
        expect(deferred.length).toBe(acquisitions)
        const sql = yield* SqlClient.SqlClient
        const redis = yield* Redis
        for (const [key, seen] of tokens) {
          const [fence] = yield* sql<{ token: string }>`SELECT token FROM lock_fences WHERE lock_key = ${key}`
          expect(Number(fence!.token)).toBe(Math.max(...seen))
          expect(yield* redis.use("get", (c) => c.get(key))).toBeNull()
        }
      }),
    { timeout: 60_000 },
  )

  effectTest(
    "a failing handler in a locked chunk: events before it commit, it is dead-lettered alone, the rest follow in order",
    () =>
      Effect.gen(function* () {
        yield* ensureEffectsTable
        const topic = workTopic()
        const group = uniqueId("lock-chunk-fail")
        const key = `lock:user:${uniqueId("u")}:chunk`
        const consumer = defineConsumer({
          name: "lock-chunk-fail",
          group,
          retry: noRetries,
          subscriptions: [
            on(
              topic,
              {
                Work: (p, meta) =>
                  Effect.gen(function* () {
                    yield* writeEffect(group, meta.eventId, meta.tenantId, p.label)
                    yield* beforeCommit(
                      "deferred",
                      writeEffect(group, crypto.randomUUID(), meta.tenantId, "deferred"),
                    )
                    if (p.label === "bad") return yield* new Fatal({ message: "refused" })
                  }),
              },
              { lockKey: () => key },
            ),
          ],
        })
        const records = ["ok-1", "ok-2", "bad", "ok-3", "ok-4"].map((label) =>
          workRecord({ label }, { key: "p" }),
        )
        yield* produce(topic.name, records)
        yield* startMember(consumer)
        yield* eventually(Effect.map(dlqRows(group), (rows) => rows.length === 1))
        yield* eventually(Effect.map(labelsOf(group), (l) => l.includes("ok-4")))
        const labels = (yield* labelsOf(group)).filter((l) => l !== "deferred")
        expect(labels).toEqual(["ok-1", "ok-2", "ok-3", "ok-4"])
        const [dead] = yield* dlqRows(group)
        expect(dead!.event_id).toBe(records[2]!.id)
        expect(dead!.error_tag).toBe("Fatal")
        // The rolled-back attempts left no deferred work behind: one per committed unit.
        const deferred = (yield* labelsOf(group)).filter((l) => l === "deferred").length
        expect(deferred).toBeGreaterThanOrEqual(1)
        expect(deferred).toBeLessThanOrEqual(2)
      }),
    { timeout: 60_000 },
  )

  effectTest(
    "a key whose fence the database has already seen newer rejects the chunk and raises the lock's counter: its events then commit one by one, in order, none dead-lettered (even without retries)",
    () =>
      Effect.gen(function* () {
        yield* ensureEffectsTable
        const topic = workTopic()
        const group = uniqueId("lock-chunk-fence")
        const good = `lock:user:${uniqueId("good")}:chunk`
        const stale = `lock:user:${uniqueId("stale")}:chunk`
        const sql = yield* SqlClient.SqlClient
        // A newer holder (by the database's record) than any token Redis would hand out for years:
        // what the database holds after Redis came back from an older snapshot.
        yield* sql`INSERT INTO lock_fences (lock_key, token) VALUES (${stale}, 9000000000000000)`
        const consumer = defineConsumer({
          name: "lock-chunk-fence",
          group,
          retry: noRetries,
          subscriptions: [
            on(
              topic,
              { Work: (p, meta) => writeEffect(group, meta.eventId, meta.tenantId, p.label) },
              { lockKey: (p) => (p.label.startsWith("stale") ? stale : good) },
            ),
          ],
        })
        const labels = ["good-1", "stale-1", "good-2", "stale-2"]
        yield* produce(
          topic.name,
          labels.map((label) => workRecord({ label }, { key: "p" })),
        )
        yield* startMember(consumer)
        yield* eventually(Effect.map(labelsOf(group), (l) => l.length === labels.length))
        expect(yield* labelsOf(group)).toEqual(labels)
        expect(yield* dlqRows(group)).toEqual([])
        const [fence] = yield* sql<{
          token: string
        }>`SELECT token::text FROM lock_fences WHERE lock_key = ${stale}`
        expect(BigInt(fence!.token)).toBeGreaterThan(9000000000000000n)
      }),
    { timeout: 60_000 },
  )
})

describe("locks taken for a unit", () => {
  effectTest(
    "deferred work holds every key it asks for until the unit's transaction is over, reusing the keys its unit holds",
    () =>
      Effect.gen(function* () {
        yield* ensureEffectsTable
        const topic = workTopic()
        const group = uniqueId("unit-locks")
        const users = ["a", "b", "c"].map((u) => uniqueId(u))
        const keys = users.map((u) => `lock:user:${u}:unit`)
        const keyOf = (label: string) => keys[Number(label.split("-")[1]) % 3]!
        const redis = yield* Redis
        const stillHeld: Array<boolean> = []
        const consumer = defineConsumer<Locks>({
          name: "unit-locks",
          group,
          retry: noRetries,
          subscriptions: [
            on(
              topic,
              {
                Work: (p, meta) =>
                  Effect.gen(function* () {
                    yield* writeEffect(group, meta.eventId, meta.tenantId, p.label)
                    if (!p.label.startsWith("all")) return
                    yield* beforeCommit(
                      `all:${meta.eventId}`,
                      Effect.gen(function* () {
                        yield* withUnitLocks(keys, () => Effect.void)
                        // Given back only after the transaction: still ours once `use` is over.
                        const values = yield* redis.use("mget", (c) => c.mget(...keys))
                        stillHeld.push(values.every((v) => v !== null))
                      }),
                    )
                  }),
              },
              { lockKey: (p) => (p.label.startsWith("all") ? undefined : keyOf(p.label)) },
            ),
          ],
        })
        const records = Array.from({ length: 40 }, (_, i) =>
          workRecord({ label: i % 10 === 9 ? `all-${i}` : `e-${i}` }, { key: "p" }),
        )
        const started = Date.now()
        yield* produce(topic.name, records)
        yield* startMember(consumer)
        yield* eventually(Effect.map(effectCounts(group), (c) => c.size >= records.length))
        // No unit waited out a lock, not even one its own events held (without retries, such a wait
        // would have dead-lettered the event).
        expect(Date.now() - started).toBeLessThan(10_000)
        expect(yield* dlqRows(group)).toEqual([])
        expect(stillHeld.length).toBeGreaterThanOrEqual(4)
        expect(stillHeld.every((held) => held)).toBe(true)
        yield* eventually(
          Effect.map(
            redis.use("mget", (c) => c.mget(...keys)),
            (values) => values.every((v) => v === null),
          ),
        )
      }),
    { timeout: 60_000 },
  )
})

describe("a fence rejection of a key taken for a unit", () => {
  effectTest("raises that key's counter, as for the unit's own keys", () =>
    Effect.gen(function* () {
      const topic = workTopic()
      const group = uniqueId("unit-catch-up")
      const key = `lock:user:${uniqueId("u")}:unit`
      const redis = yield* Redis
      // Above the clock-seeded counter (microseconds), and exact in a double.
      const newest = Date.now() * 1000 + 1_000_000_000
      const consumer = defineConsumer<Locks>({
        name: "unit-catch-up",
        group,
        retry: noRetries,
        subscriptions: [
          on(topic, {
            Work: () =>
              beforeCommit(
                "reprice",
                withUnitLocks([key], (held) =>
                  Effect.fail(new FencingRejected({ lockKey: key, token: held.get(key)!.token, newest })),
                ),
              ),
          }),
        ],
      })
      yield* produce(topic.name, [workRecord({ label: "x" })])
      yield* startMember(consumer)
      yield* eventually(Effect.map(dlqRows(group), (rows) => rows.length === 1))
      expect(Number(yield* redis.use("get", (c) => c.get(fenceKey(key))))).toBe(newest)
    }),
  )
})
