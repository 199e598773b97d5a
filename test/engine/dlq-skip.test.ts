/**
 * A redelivered event whose record waits in the DLQ is skipped by the inbox claim until it is
 * replayed: per group, per tenant (under RLS), through the replay states.
 */
import { describe, expect } from "bun:test"
import { SqlClient } from "@effect/sql"
import { Effect } from "effect"
import { defineConsumer, on } from "../../src/engine/consumer/definition.ts"
import { replayDlqIdHeader, replayGroupHeader } from "../../src/engine/consumer/dlq.ts"
import { Fatal } from "../../src/engine/consumer/errors.ts"
import {
  committedCount,
  dlqRows,
  effectCounts,
  ensureEffectsTable,
  eventually,
  produce,
  startMember,
  type TestRecord,
  workRecord,
  workTopic,
  writeEffect,
} from "../support/consumer-fixtures.ts"
import { effectTest } from "../support/effect.ts"
import { uniqueId } from "../support/ids.ts"

const occurrencesOf = (group: string) =>
  Effect.flatMap(
    SqlClient.SqlClient,
    (sql) => sql<{ event_id: string | null; occurrences: number; replay_status: string }>`
      SELECT event_id::text, occurrences, replay_status FROM event_dlq
      WHERE consumer_group = ${group} ORDER BY id`,
  )

const replayOf = (r: TestRecord, group: string, dlqId: string): TestRecord => ({
  ...r,
  headers: { ...r.headers, [replayGroupHeader]: group, [replayDlqIdHeader]: dlqId },
})

describe("the DLQ skip of a redelivered event", () => {
  effectTest(
    "redelivered in chunks that mix tenants, each tenant's dead-lettered event is skipped and counted on its own entry; another group, whose handler succeeds, processes those events once",
    () =>
      Effect.gen(function* () {
        yield* ensureEffectsTable
        const topic = workTopic()
        const failing = uniqueId("dlq-tenants-a")
        const other = uniqueId("dlq-tenants-b")
        const calls = new Map<string, number>()
        const consumer = (group: string, fails: boolean) =>
          defineConsumer({
            name: group,
            group,
            subscriptions: [
              on(topic, {
                Work: (p, meta) => {
                  const call = `${group}/${p.label}`
                  calls.set(call, (calls.get(call) ?? 0) + 1)
                  return fails && p.label.startsWith("bad")
                    ? new Fatal({ message: `${p.label} broken` })
                    : writeEffect(group, meta.eventId, meta.tenantId, p.label)
                },
              }),
            ],
          })
        const tenants = [crypto.randomUUID(), crypto.randomUUID(), crypto.randomUUID()]
        const records = tenants.flatMap((tenantId, t) =>
          ["ok", "bad", "ok2"].map((label) =>
            workRecord({ label: `${label}-${t}` }, { key: "one-partition", tenantId }),
          ),
        )
        yield* produce(topic.name, records)
        yield* startMember(consumer(failing, true))
        yield* eventually(Effect.map(committedCount(failing, topic.name), (n) => n === records.length))
        // The other group starts with the failing group's entries open for the same event ids.
        yield* startMember(consumer(other, false))
        yield* eventually(Effect.map(committedCount(other, topic.name), (n) => n === records.length))
        yield* produce(topic.name, records)
        yield* eventually(Effect.map(committedCount(failing, topic.name), (n) => n === 2 * records.length))
        yield* eventually(Effect.map(committedCount(other, topic.name), (n) => n === 2 * records.length))

        const bad = records.filter((_, i) => i % 3 === 1)
        const entries = yield* Effect.flatMap(
          SqlClient.SqlClient,
          (sql) => sql<{ event_id: string; tenant_id: string; occurrences: number }>`
            SELECT event_id::text, tenant_id::text, occurrences FROM event_dlq
            WHERE consumer_group = ${failing} ORDER BY id`,
        )
        expect(entries).toEqual(bad.map((r) => ({ event_id: r.id, tenant_id: r.tenantId, occurrences: 2 })))
        const failingEffects = yield* effectCounts(failing)
        const otherEffects = yield* effectCounts(other)
        for (const r of records) {
          expect(failingEffects.get(r.id)).toBe(bad.includes(r) ? undefined : 1)
          expect(otherEffects.get(r.id)).toBe(1)
        }
        for (const t of [0, 1, 2]) {
          expect(calls.get(`${failing}/bad-${t}`)).toBe(1)
          expect(calls.get(`${other}/bad-${t}`)).toBe(1)
        }
      }),
  )

  effectTest(
    "delivered again while its entry is replaying, failed again, or after its replay: skipped and counted until the replay succeeds, then an inbox duplicate; one effect",
    () =>
      Effect.gen(function* () {
        yield* ensureEffectsTable
        const sql = yield* SqlClient.SqlClient
        const topic = workTopic()
        const group = uniqueId("dlq-states")
        const broken = new Set(["bad"])
        let calls = 0
        const consumer = defineConsumer({
          name: "dlq-states",
          group,
          subscriptions: [
            on(topic, {
              Work: (p, meta) => {
                if (p.label === "bad") calls += 1
                return broken.has(p.label)
                  ? new Fatal({ message: `${p.label} broken` })
                  : writeEffect(group, meta.eventId, meta.tenantId, p.label)
              },
            }),
          ],
        })
        const key = { key: "one-partition" }
        const bad = workRecord({ label: "bad" }, key)
        yield* produce(topic.name, [bad])
        yield* startMember(consumer)
        yield* eventually(Effect.map(committedCount(group, topic.name), (n) => n === 1))
        const [entry] = yield* occurrencesOf(group)
        expect(entry).toEqual({ event_id: bad.id, occurrences: 1, replay_status: "pending" })
        const id = (yield* dlqRows(group))[0]!.id
        const step = (records: ReadonlyArray<TestRecord>, committed: number) =>
          Effect.zipRight(
            produce(topic.name, records),
            eventually(Effect.map(committedCount(group, topic.name), (n) => n === committed)),
          )

        // What `dlq replay` does first; the original arrives again before the replay's record.
        yield* sql`UPDATE event_dlq SET replay_status = 'replaying', replay_count = 1 WHERE id = ${id}`
        yield* step([bad], 2)
        yield* step([replayOf(bad, group, id)], 3)
        expect(yield* occurrencesOf(group)).toEqual([
          { event_id: bad.id, occurrences: 2, replay_status: "failed" },
        ])
        yield* step([bad], 4)
        expect(yield* occurrencesOf(group)).toEqual([
          { event_id: bad.id, occurrences: 3, replay_status: "failed" },
        ])
        expect(calls).toBe(2)

        broken.delete("bad")
        yield* step([replayOf(bad, group, id), bad], 6)
        expect(yield* occurrencesOf(group)).toEqual([
          { event_id: bad.id, occurrences: 3, replay_status: "replayed" },
        ])
        expect(calls).toBe(3)
        expect((yield* effectCounts(group)).get(bad.id)).toBe(1)
      }),
  )
})
