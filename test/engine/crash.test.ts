import { describe, expect } from "bun:test"
import { SqlClient } from "@effect/sql"
import type { Subprocess } from "bun"
import { Duration, Effect, Fiber, Metric } from "effect"
import { defineConsumer, on } from "../../src/engine/consumer/definition.ts"
import { groupJoins } from "../../src/engine/consumer/metrics.ts"
import { Kafka } from "../../src/platform/kafka.ts"
import {
  committedCount,
  effectCounts,
  ensureEffectsTable,
  eventually,
  produce,
  spawnMember,
  startMember,
  workRecord,
  workTopic,
  writeEffect,
} from "../support/consumer-fixtures.ts"
import { effectTest } from "../support/effect.ts"
import { uniqueId } from "../support/ids.ts"

const alive = (m: Subprocess) => m.exitCode === null && m.signalCode === null

/** Per partition, the member (pid) whose effect on it is the newest, and when that was (ms, DB clock). */
const latestByPartition = (group: string) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const rows = yield* sql<{ partition: number; pid: number; at: number }>`
      SELECT DISTINCT ON (partition) partition, pid, at FROM (
        SELECT split_part(label, '-', 1)::int AS partition, split_part(label, '@', 2)::int AS pid,
               (extract(epoch FROM at) * 1000)::float8 AS at
        FROM consumer_test_effects WHERE consumer_group = ${group}) e
      ORDER BY partition, at DESC`
    return new Map(rows.map((r) => [r.partition, { pid: r.pid, at: r.at }]))
  })

/**
 * The first effect on each of `partitions` after `since` (ms, DB clock) by a member other than
 * `pid`; missing until there is one.
 */
const firstAfter = (group: string, partitions: ReadonlyArray<number>, since: number, pid: number) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const rows = yield* sql<{ partition: number; at: number }>`
      SELECT split_part(label, '-', 1)::int AS partition, min(extract(epoch FROM at) * 1000)::float8 AS at
      FROM consumer_test_effects
      WHERE consumer_group = ${group} AND at > to_timestamp(${since / 1000})
        AND split_part(label, '@', 2)::int <> ${pid}
      GROUP BY 1`
    const firsts = new Map(rows.map((r) => [r.partition, r.at]))
    return partitions.map((p) => firsts.get(p))
  })

const partitions = [0, 1, 2, 3]

/** One event per partition every 100 ms, labelled with its partition, until interrupted. */
const produceSteadily = (topic: string) =>
  Effect.gen(function* () {
    const kafka = yield* Kafka
    const producer = yield* kafka.producer()
    for (let seq = 0; ; seq++) {
      const messages = partitions.map((partition) => ({
        ...workRecord({ label: `${partition}-${seq}` }),
        partition,
      }))
      yield* Effect.promise(() => producer.send({ topic, messages }))
      yield* Effect.sleep(Duration.millis(100))
    }
  }).pipe(Effect.scoped)

const dbNow = Effect.flatMap(SqlClient.SqlClient, (sql) =>
  Effect.map(
    sql<{ now: number }>`SELECT (extract(epoch FROM clock_timestamp()) * 1000)::float8 AS now`,
    ([row]) => row!.now,
  ),
)

/**
 * Members of a fresh group under steady events: `leader` (its own process, spawned first, so the
 * mock's leader) and, unless the leader is the victim, a `follower`. The victim is SIGKILLed and a
 * member in this process (ready within moments, long before the dead one's session ends) takes its
 * place; returns how long until each of the victim's partitions had an effect again (ms).
 */
const replaceAtOnce = (victim: "leader" | "follower") =>
  Effect.gen(function* () {
    yield* ensureEffectsTable
    const topic = workTopic()
    const group = uniqueId("replace-group")
    yield* Effect.forkScoped(produceSteadily(topic.name))
    const leader = yield* spawnMember(topic.aggregatetype, group)
    yield* eventually(
      Effect.map(latestByPartition(group), (latest) =>
        partitions.every((p) => latest.get(p)?.pid === leader.pid),
      ),
      Duration.seconds(60),
    )
    const follower = victim === "follower" ? yield* spawnMember(topic.aggregatetype, group) : undefined
    if (follower)
      yield* eventually(
        Effect.map(latestByPartition(group), (latest) =>
          [...latest.values()].some((l) => l.pid === follower.pid),
        ),
        Duration.seconds(60),
      )
    const dead = follower ?? leader
    const latest = yield* latestByPartition(group)
    const deadPartitions = partitions.filter((p) => latest.get(p)!.pid === dead.pid)
    const killedAt = yield* dbNow
    dead.kill("SIGKILL")
    yield* Effect.promise(() => dead.exited)
    yield* startMember(
      defineConsumer({
        name: "replacement",
        group,
        subscriptions: [
          on(topic, { Work: (p, meta) => writeEffect(group, meta.eventId, meta.tenantId, `${p.label}@0@1`) }),
        ],
      }),
    )
    yield* eventually(
      Effect.map(firstAfter(group, deadPartitions, killedAt, dead.pid), (firsts) =>
        firsts.every((at) => at !== undefined),
      ),
      Duration.seconds(30),
    )
    const firsts = yield* firstAfter(group, deadPartitions, killedAt, dead.pid)
    return { recovery: Math.max(...firsts.map((at) => at! - killedAt)), group }
  })

describe("consumer crashes", () => {
  effectTest(
    "3 members SIGKILLed 10 times at random while events flow: every event's effect happens exactly once",
    () =>
      Effect.gen(function* () {
        yield* ensureEffectsTable
        const topic = workTopic()
        const group = uniqueId("crash-group")
        const members: Array<Subprocess> = []

        const ids: Array<string> = []
        const rounds = 100
        const producer = yield* Effect.fork(
          Effect.gen(function* () {
            for (let round = 0; round < rounds; round++) {
              const batch = Array.from({ length: 20 }, (_, i) => workRecord({ label: `r${round}-${i}` }))
              ids.push(...batch.map((r) => r.id))
              yield* produce(topic.name, batch)
              yield* Effect.sleep(Duration.millis(100))
            }
          }),
        )
        for (let i = 0; i < 3; i++) members.push(yield* spawnMember(topic.aggregatetype, group))

        yield* Effect.sleep(Duration.seconds(2))
        for (let kill = 0; kill < 10; kill++) {
          yield* Effect.sleep(Duration.millis(400 + Math.random() * 1200))
          const living = members.filter(alive)
          const victim = living[Math.floor(Math.random() * living.length)]!
          victim.kill("SIGKILL")
          yield* Effect.promise(() => victim.exited)
          members.push(yield* spawnMember(topic.aggregatetype, group))
        }
        yield* Fiber.join(producer)

        yield* eventually(
          Effect.map(effectCounts(group), (counts) => counts.size === ids.length),
          Duration.seconds(60),
        )
        const counts = yield* effectCounts(group)
        const wrong = ids.filter((id) => counts.get(id) !== 1)
        expect(wrong).toEqual([])
        expect(counts.size).toBe(ids.length)

        // The survivors drain on SIGTERM: offsets committed, clean exit.
        yield* eventually(
          Effect.map(committedCount(group, topic.name), (n) => n === ids.length),
          Duration.seconds(30),
        )
        const survivors = members.filter(alive)
        expect(survivors.length).toBe(3)
        for (const m of survivors) m.kill("SIGTERM")
        const codes = yield* Effect.promise(() => Promise.all(survivors.map((m) => m.exited)))
        expect(codes).toEqual([0, 0, 0])
      }),
    { timeout: 120_000 },
  )

  effectTest(
    "a SIGKILLed and restarted member's partitions are processed again within 10 s, three kills in a row",
    () =>
      Effect.gen(function* () {
        yield* ensureEffectsTable
        const topic = workTopic()
        const group = uniqueId("recovery-group")
        const members: Array<Subprocess> = []
        yield* Effect.forkScoped(produceSteadily(topic.name))
        for (let i = 0; i < 3; i++) members.push(yield* spawnMember(topic.aggregatetype, group))

        const recoveries: Array<number> = []
        for (let kill = 0; kill < 3; kill++) {
          // Steady: every partition processed within the last second, each by one of the members.
          yield* eventually(
            Effect.gen(function* () {
              const latest = yield* latestByPartition(group)
              const now = yield* dbNow
              const pids = new Set(members.filter(alive).map((m) => m.pid))
              return partitions.every((p) => {
                const l = latest.get(p)
                return l !== undefined && now - l.at < 1000 && pids.has(l.pid)
              })
            }),
            Duration.seconds(90),
          )
          const latest = yield* latestByPartition(group)
          const owners = new Set([...latest.values()].map((l) => l.pid))
          const victim = members.find((m) => alive(m) && owners.has(m.pid))!
          const victimPartitions = partitions.filter((p) => latest.get(p)!.pid === victim.pid)

          const killedAt = yield* dbNow
          victim.kill("SIGKILL")
          yield* Effect.promise(() => victim.exited)
          members.push(yield* spawnMember(topic.aggregatetype, group))

          yield* eventually(
            Effect.map(firstAfter(group, victimPartitions, killedAt, victim.pid), (firsts) =>
              firsts.every((at) => at !== undefined),
            ),
            Duration.seconds(90),
          )
          const firsts = yield* firstAfter(group, victimPartitions, killedAt, victim.pid)
          recoveries.push(Math.max(...firsts.map((at) => at! - killedAt)))
        }
        console.log(`recovery after a SIGKILL, ms: ${recoveries.map(Math.round).join(", ")}`)
        for (const ms of recoveries) expect(ms).toBeLessThan(10_000)
      }),
    { timeout: 400_000 },
  )

  for (const victim of ["follower", "leader"] as const)
    effectTest(
      `a SIGKILLed ${victim} replaced at once: its partitions move within 10 s, in one rebalance`,
      () =>
        Effect.gen(function* () {
          const { recovery, group } = yield* replaceAtOnce(victim)
          console.log(`a dead ${victim}'s partitions moved ${Math.round(recovery)} ms after the kill`)
          expect(recovery).toBeLessThan(10_000)
          // The dead member was out before the assignment: its session ending makes no second one.
          yield* Effect.sleep(Duration.seconds(7))
          expect((yield* Metric.value(Metric.tagged(groupJoins, "group", group))).count).toBe(1)
        }),
      { timeout: 120_000 },
    )
})
