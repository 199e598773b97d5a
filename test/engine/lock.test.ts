import { describe, expect } from "bun:test"
import { SqlClient } from "@effect/sql"
import { Deferred, Duration, Effect, Exit, Fiber } from "effect"
import { defineConsumer, on } from "../../src/engine/consumer/definition.ts"
import { FencingRejected } from "../../src/engine/consumer/errors.ts"
import { defaultLockOptions, fence, fenceKey, Locks } from "../../src/engine/consumer/lock.ts"
import { withTenant } from "../../src/platform/db.ts"
import { Redis } from "../../src/platform/redis.ts"
import {
  committedCount,
  effectCounts,
  ensureEffectsTable,
  eventually,
  produce,
  startMember,
  testTenant,
  workRecord,
  workTopic,
  writeEffect,
} from "../support/consumer-fixtures.ts"
import { effectTest } from "../support/effect.ts"
import { uniqueId } from "../support/ids.ts"

/**
 * One key's fenced writes, as a locked consumer does them: a row and the fence check in one tenant
 * transaction under the lock; `labels()` lists what committed, in order.
 */
const fencedWriter = (prefix: string) =>
  Effect.gen(function* () {
    yield* ensureEffectsTable
    const locks = yield* Locks.make(defaultLockOptions)
    const sql = yield* SqlClient.SqlClient
    const key = `lock:user:${uniqueId("u")}:portfolio`
    const group = uniqueId(prefix)
    const write = (label: string) =>
      locks.withLock(key, (held) =>
        withTenant(testTenant)(
          Effect.zipRight(writeEffect(group, crypto.randomUUID(), testTenant, label), fence(held)),
        ).pipe(Effect.as(held.token)),
      )
    const labels = Effect.map(
      sql<{
        label: string
      }>`SELECT label FROM consumer_test_effects WHERE consumer_group = ${group} ORDER BY at`,
      (rows) => rows.map((r) => r.label),
    )
    return { key, write, labels }
  })

describe("consumer locks", () => {
  effectTest(
    "two members contending for one lock key never run the handler at the same time",
    () =>
      Effect.gen(function* () {
        yield* ensureEffectsTable
        const topic = workTopic()
        const group = uniqueId("lock-group")
        const lockKey = `lock:user:${uniqueId("u")}:portfolio`
        let active = 0
        let maxActive = 0
        const consumer = defineConsumer({
          name: "lock-test",
          group,
          subscriptions: [
            on(
              topic,
              {
                Work: (p, meta) =>
                  Effect.gen(function* () {
                    active += 1
                    maxActive = Math.max(maxActive, active)
                    yield* Effect.sleep(Duration.millis(15))
                    active -= 1
                    expect(meta.lock?.key).toBe(lockKey)
                    yield* writeEffect(group, meta.eventId, meta.tenantId, p.label)
                  }),
              },
              { lockKey: () => lockKey },
            ),
          ],
        })
        // Distinct keys spread the events over all partitions, so both members hold some.
        const records = Array.from({ length: 40 }, (_, i) => workRecord({ label: `e${i}` }))
        yield* produce(topic.name, records)
        yield* startMember(consumer)
        yield* startMember(consumer)
        yield* eventually(
          Effect.map(committedCount(group, topic.name), (n) => n === records.length),
          Duration.seconds(45),
        )
        expect(maxActive).toBe(1)
        const effects = yield* effectCounts(group)
        expect(effects.size).toBe(records.length)
        for (const r of records) expect(effects.get(r.id)).toBe(1)
        const redis = yield* Redis
        expect(yield* redis.use("get", (c) => c.get(lockKey))).toBeNull()
      }),
    { timeout: 60_000 },
  )

  effectTest("a holder whose lock expired has its late write rejected by fencing", () =>
    Effect.gen(function* () {
      yield* ensureEffectsTable
      const sql = yield* SqlClient.SqlClient
      // A short ttl and no renewal in time: the first holder "pauses" past its lease.
      const locks = yield* Locks.make({
        ttl: Duration.millis(300),
        wait: Duration.seconds(3),
        renewEvery: Duration.seconds(30),
      })
      const key = `lock:user:${uniqueId("u")}:portfolio`
      const group = uniqueId("fence-group")
      const write = (label: string) => writeEffect(group, crypto.randomUUID(), testTenant, label)
      const firstHolds = yield* Deferred.make<number>()
      const secondDone = yield* Deferred.make<number>()

      const stale = yield* Effect.fork(
        locks.withLock(key, (held) =>
          Effect.gen(function* () {
            yield* Deferred.succeed(firstHolds, held.token)
            yield* Deferred.await(secondDone)
            // The late write, in one transaction with its fence check.
            return yield* withTenant(testTenant)(Effect.zipRight(write("stale"), fence(held)))
          }),
        ),
      )
      const firstToken = yield* Deferred.await(firstHolds)
      // The second holder gets the lock only once the first one's lease has expired.
      const secondToken = yield* locks.withLock(key, (held) =>
        withTenant(testTenant)(Effect.zipRight(write("fresh"), fence(held))).pipe(Effect.as(held.token)),
      )
      yield* Deferred.succeed(secondDone, secondToken)
      const exit = yield* Fiber.await(stale)

      expect(secondToken).toBeGreaterThan(firstToken)
      expect(Exit.isFailure(exit)).toBe(true)
      if (Exit.isFailure(exit)) expect(JSON.stringify(exit.cause)).toContain("FencingRejected")
      const labels = yield* sql<{ label: string }>`
        SELECT label FROM consumer_test_effects WHERE consumer_group = ${group} ORDER BY at`
      expect(labels.map((r) => r.label)).toEqual(["fresh"])
    }),
  )

  effectTest("tokens stay above every recorded fence when Redis loses the counter (restart, failover)", () =>
    Effect.gen(function* () {
      const redis = yield* Redis
      const { key, write, labels } = yield* fencedWriter("lost-counter")
      const before = yield* write("before")
      yield* write("again")
      // What a Redis without persistence looks like after a restart: the counter is gone.
      yield* redis.use("del", (c) => c.del(fenceKey(key)))
      const after = yield* write("after the loss")
      expect(after).toBeGreaterThan(before + 1)
      expect(Number.isSafeInteger(after)).toBe(true)
      expect(yield* labels).toEqual(["before", "again", "after the loss"])
    }),
  )

  effectTest(
    "a counter that Redis restored behind the database (an older snapshot) is raised by the first rejection, so the next holder commits",
    () =>
      Effect.gen(function* () {
        const redis = yield* Redis
        const { key, write, labels } = yield* fencedWriter("restored-counter")
        const recorded = yield* write("before")
        // The counter as an older snapshot had it: far below what the database has recorded.
        yield* redis.use("set", (c) => c.set(fenceKey(key), "5"))
        const rejected = yield* Effect.flip(write("from the old counter"))
        expect(rejected).toBeInstanceOf(FencingRejected)
        expect(rejected).toMatchObject({ lockKey: key, token: 6, newest: recorded })
        expect(Number(yield* redis.use("get", (c) => c.get(fenceKey(key))))).toBe(recorded)
        expect(yield* write("after the catch-up")).toBe(recorded + 1)
        expect(yield* labels).toEqual(["before", "after the catch-up"])
      }),
  )
})

describe("consumer locks on a Redis that hangs", () => {
  effectTest(
    "Redis stops answering while a lock is held: the release gives up after its 2 s and the unit ends",
    () =>
      Effect.gen(function* () {
        const locks = yield* Locks.make(defaultLockOptions)
        const redis = yield* Redis
        const key = `lock:user:${uniqueId("u")}:portfolio`
        const [took, value] = yield* Effect.timed(
          locks.withLock(key, () =>
            // CLIENT PAUSE: the server keeps every connection open and answers none of them for 6 s.
            Effect.as(
              redis.use("pause", (c) => c.call("CLIENT", "PAUSE", "6000", "ALL")),
              "done",
            ),
          ),
        )
        expect(value).toBe("done")
        expect(Duration.toMillis(took)).toBeLessThan(4_500)
        // Let the pause run out before the next test uses Redis.
        yield* Effect.sleep(Duration.millis(Math.max(0, 6_500 - Duration.toMillis(took))))
      }),
  )
})
