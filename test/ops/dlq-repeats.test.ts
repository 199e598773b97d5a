import { describe, expect } from "bun:test"
import { join } from "node:path"
import { SqlClient } from "@effect/sql"
import type { Subprocess } from "bun"
import { Duration, Effect, Fiber, Metric } from "effect"
import { defineConsumer, on } from "../../src/engine/consumer/definition.ts"
import { Retryable } from "../../src/engine/consumer/errors.ts"
import { eventsSkipped } from "../../src/engine/consumer/metrics.ts"
import { decodeRetryPolicy } from "../../src/engine/consumer/retry.ts"
import type { DlqStatsReport } from "../../src/ops/dlq/stats.ts"
import {
  committedCount,
  effectCounts,
  ensureEffectsTable,
  eventually,
  produce,
  rewindGroup,
  startMember,
  workRecord,
  workTopic,
  writeEffect,
} from "../support/consumer-fixtures.ts"
import { effectTest } from "../support/effect.ts"
import { uniqueId } from "../support/ids.ts"
import { cli, cliJson } from "./dlq-fixtures.ts"

const memberScript = join(import.meta.dir, "../support/consumer-process.ts")

const occurrencesOf = (group: string) =>
  Effect.flatMap(
    SqlClient.SqlClient,
    (sql) => sql<{ event_id: string | null; offset: string; occurrences: number; replay_status: string }>`
      SELECT event_id::text, "offset"::text, occurrences, replay_status FROM event_dlq
      WHERE consumer_group = ${group} ORDER BY id`,
  )

const breakdownOf = (group: string) =>
  Effect.map(cliJson<DlqStatsReport>(["stats"]), (s) =>
    s.breakdown
      .filter((r) => r.consumerGroup === group)
      .map(({ errorTag, total, pending, occurrences }) => ({ errorTag, total, pending, occurrences })),
  )

describe("a dead-lettered record delivered again", () => {
  effectTest(
    "redelivered to a restarted member and re-produced, it is skipped: one pending entry counting 3, its handler not run or retried again; replayed, its effect happens once",
    () =>
      Effect.gen(function* () {
        yield* ensureEffectsTable
        const topic = workTopic()
        const group = uniqueId("dlq-repeat")
        const broken = new Set(["bad"])
        const calls = new Map<string, number>()
        const consumer = defineConsumer({
          name: "dlq-repeat",
          group,
          retry: decodeRetryPolicy({ maxAttempts: 3, baseDelayMs: 50, factor: 2, capMs: 200, jitter: 0 }),
          subscriptions: [
            on(topic, {
              Work: (p, meta) => {
                calls.set(p.label, (calls.get(p.label) ?? 0) + 1)
                return broken.has(p.label)
                  ? new Retryable({ message: `${p.label} still down` })
                  : writeEffect(group, meta.eventId, meta.tenantId, p.label)
              },
            }),
          ],
        })
        const key = { key: "one-partition" }
        const bad = workRecord({ label: "bad" }, key)
        const ok = workRecord({ label: "ok" }, key)
        yield* produce(topic.name, [bad, ok])
        const first = yield* startMember(consumer)
        yield* eventually(Effect.map(committedCount(group, topic.name), (n) => n === 2))
        expect(calls.get("bad")).toBe(3)
        expect(yield* occurrencesOf(group)).toEqual([
          { event_id: bad.id, offset: "0", occurrences: 1, replay_status: "pending" },
        ])

        // A member that restarts before its offset commit gets both records again.
        yield* Fiber.interrupt(first)
        yield* rewindGroup(group, topic.name)
        yield* startMember(consumer)
        yield* eventually(Effect.map(occurrencesOf(group), (rows) => rows[0]?.occurrences === 2))
        // A relay duplicate: the same event at a new offset.
        yield* produce(topic.name, [bad])
        yield* eventually(Effect.map(occurrencesOf(group), (rows) => rows[0]?.occurrences === 3))
        yield* eventually(Effect.map(committedCount(group, topic.name), (n) => n === 3))

        expect(yield* occurrencesOf(group)).toEqual([
          { event_id: bad.id, offset: "0", occurrences: 3, replay_status: "pending" },
        ])
        expect(calls.get("bad")).toBe(3)
        expect(calls.get("ok")).toBe(1)
        const skipped = Metric.tagged(Metric.tagged(eventsSkipped, "group", group), "reason", "dead-lettered")
        expect((yield* Metric.value(skipped)).count).toBe(2)
        expect(yield* breakdownOf(group)).toEqual([
          { errorTag: "Retryable", total: 1, pending: 1, occurrences: 3 },
        ])
        const listed = yield* cli(["list", "--group", group])
        expect(listed.stdout).toMatch(/Retryable\s+3\s+3\s+pending/)

        broken.delete("bad")
        const replay = yield* cli(["replay", "--group", group])
        expect(replay.stdout).toContain("Replayed 1 entry; 0 could not be sent.")
        yield* eventually(Effect.map(occurrencesOf(group), (rows) => rows[0]?.replay_status === "replayed"))
        expect((yield* effectCounts(group)).get(bad.id)).toBe(1)
        expect(calls.get("bad")).toBe(4)

        // Delivered again after the replay, it is an inbox duplicate: no effect, no entry.
        yield* produce(topic.name, [bad])
        yield* eventually(Effect.map(committedCount(group, topic.name), (n) => n === 5))
        expect((yield* effectCounts(group)).get(bad.id)).toBe(1)
        expect(calls.get("bad")).toBe(4)
        expect((yield* occurrencesOf(group)).length).toBe(1)
      }),
    { timeout: 90_000 },
  )

  effectTest(
    "poison records redelivered after their member was SIGKILLed before any offset commit, then re-produced: one entry per event counting 3; a record without an event id is the same record only at its own offset",
    () =>
      Effect.gen(function* () {
        yield* ensureEffectsTable
        const sql = yield* SqlClient.SqlClient
        const topic = workTopic()
        const group = uniqueId("dlq-repeat-kill")
        const members: Array<Subprocess> = []
        yield* Effect.addFinalizer(() =>
          Effect.gen(function* () {
            for (const m of members) m.kill("SIGKILL")
            yield* Effect.promise(() => Promise.all(members.map((m) => m.exited)))
            yield* Effect.ignore(sql`DELETE FROM event_dlq WHERE consumer_group = ${group}`)
          }),
        )
        const spawnMember = () => {
          const member = Bun.spawn([process.execPath, memberScript, topic.aggregatetype, group], {
            // No offset commit before the kill.
            env: { ...process.env, LOG_LEVEL: "Error", NODE_NO_WARNINGS: "1", COMMIT_INTERVAL_MS: "600000" },
            stdout: "ignore",
            stderr: "inherit",
          })
          members.push(member)
          return member
        }
        const key = { key: "one-partition" }
        const undecodable = { ...workRecord({ label: "x" }, key), value: JSON.stringify({ label: 42 }) }
        const base = workRecord({ label: "x" }, key)
        const noId = { ...base, headers: { ...base.headers, id: "not-a-uuid" } }
        const good = workRecord({ label: "good" }, key)
        yield* produce(topic.name, [undecodable, noId, good])

        const first = spawnMember()
        yield* eventually(
          Effect.map(effectCounts(group), (c) => c.get(good.id) === 1),
          Duration.seconds(30),
        )
        expect((yield* occurrencesOf(group)).map((r) => r.occurrences)).toEqual([1, 1])
        expect(yield* committedCount(group, topic.name)).toBe(0)
        first.kill("SIGKILL")
        yield* Effect.promise(() => first.exited)

        spawnMember()
        yield* eventually(
          Effect.map(occurrencesOf(group), (rows) => rows.every((r) => r.occurrences === 2)),
          Duration.seconds(40),
        )
        yield* produce(topic.name, [undecodable, noId])
        yield* eventually(
          Effect.map(occurrencesOf(group), (rows) => rows.length === 3 && rows[0]!.occurrences === 3),
        )

        expect(yield* occurrencesOf(group)).toEqual([
          { event_id: undecodable.id, offset: "0", occurrences: 3, replay_status: "pending" },
          { event_id: null, offset: "1", occurrences: 2, replay_status: "pending" },
          { event_id: null, offset: "4", occurrences: 1, replay_status: "pending" },
        ])
        expect((yield* effectCounts(group)).get(good.id)).toBe(1)
        expect(yield* breakdownOf(group)).toEqual([
          { errorTag: "MalformedHeader", total: 2, pending: 2, occurrences: 3 },
          { errorTag: "DecodeFailed", total: 1, pending: 1, occurrences: 3 },
        ])
      }),
    { timeout: 120_000 },
  )
})
