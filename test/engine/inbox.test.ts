import { describe, expect } from "bun:test"
import { SqlClient } from "@effect/sql"
import { Effect, Fiber } from "effect"
import { defineConsumer, on } from "../../src/engine/consumer/definition.ts"
import { Retryable } from "../../src/engine/consumer/errors.ts"
import { decodeRetryPolicy } from "../../src/engine/consumer/retry.ts"
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

describe("consumer inbox", () => {
  effectTest(
    "an event delivered twice, then again after the offsets are rewound, has one effect and one inbox row",
    () =>
      Effect.gen(function* () {
        yield* ensureEffectsTable
        const sql = yield* SqlClient.SqlClient
        const topic = workTopic()
        const group = uniqueId("inbox-group")
        const consumer = defineConsumer({
          name: "inbox-test",
          group,
          subscriptions: [
            on(topic, { Work: (p, meta) => writeEffect(group, meta.eventId, meta.tenantId, p.label) }),
          ],
        })
        const twice = workRecord({ label: "twice" })
        const other = workRecord({ label: "other" })
        // Same key: the duplicate lands in the same partition, once within a batch and once later.
        yield* produce(topic.name, [twice, twice, other])
        yield* produce(topic.name, [twice])

        const member = yield* startMember(consumer)
        yield* eventually(Effect.map(committedCount(group, topic.name), (n) => n === 4))
        yield* Fiber.interrupt(member)

        // Rewind the group to the beginning and consume everything again.
        yield* rewindGroup(group, topic.name)
        yield* eventually(Effect.map(committedCount(group, topic.name), (n) => n === 0))
        yield* produce(topic.name, [workRecord({ label: "marker" })])
        yield* startMember(consumer)
        yield* eventually(Effect.map(committedCount(group, topic.name), (n) => n === 5))

        const counts = yield* effectCounts(group)
        expect(counts.get(twice.id)).toBe(1)
        expect(counts.get(other.id)).toBe(1)
        expect(counts.size).toBe(3)
        const inbox = yield* sql<{ n: number }>`
          SELECT count(*)::int AS n FROM event_inbox WHERE consumer_group = ${group} AND event_id = ${twice.id}`
        expect(inbox[0]!.n).toBe(1)
      }),
    { timeout: 60_000 },
  )

  effectTest(
    "an event whose id header is in upper case is processed once, in a chunk and on the per-event path of a retry, and is a duplicate when delivered again",
    () =>
      Effect.gen(function* () {
        yield* ensureEffectsTable
        const topic = workTopic()
        const group = uniqueId("upper-id")
        let retriedCalls = 0
        const consumer = defineConsumer({
          name: "upper-id",
          group,
          retry: decodeRetryPolicy({ maxAttempts: 3, baseDelayMs: 20, factor: 1, capMs: 20, jitter: 0 }),
          subscriptions: [
            on(topic, {
              Work: (p, meta) => {
                if (p.label === "retried" && ++retriedCalls === 1) return new Retryable({ message: "once" })
                return writeEffect(group, meta.eventId, meta.tenantId, p.label)
              },
            }),
          ],
        })
        const upper = () => crypto.randomUUID().toUpperCase()
        const key = { key: "one-partition" }
        const inChunk = workRecord({ label: "in-chunk" }, { ...key, id: upper(), tenantId: upper() })
        const retried = workRecord({ label: "retried" }, { ...key, id: upper() })
        const other = workRecord({ label: "other" }, key)
        yield* produce(topic.name, [inChunk, retried, other])
        yield* startMember(consumer)
        yield* eventually(Effect.map(committedCount(group, topic.name), (n) => n === 3))
        yield* produce(topic.name, [inChunk, retried])
        yield* eventually(Effect.map(committedCount(group, topic.name), (n) => n === 5))

        const counts = yield* effectCounts(group)
        expect(counts.get(inChunk.id.toLowerCase())).toBe(1)
        expect(counts.get(retried.id.toLowerCase())).toBe(1)
        expect(counts.get(other.id)).toBe(1)
        expect(retriedCalls).toBe(2)
      }),
  )

  effectTest(
    "each handler runs as the RLS role with its own event's tenant, also when tenants interleave",
    () =>
      Effect.gen(function* () {
        yield* ensureEffectsTable
        const sql = yield* SqlClient.SqlClient
        const topic = workTopic()
        const group = uniqueId("tenant-group")
        const consumer = defineConsumer({
          name: "tenant-test",
          group,
          subscriptions: [
            on(topic, {
              Work: (_, meta) =>
                Effect.flatMap(
                  SqlClient.SqlClient,
                  (sql) => sql`INSERT INTO consumer_test_effects (consumer_group, event_id, tenant_id, label)
                  VALUES (${group}, ${meta.eventId}, app_current_tenant(), current_user)`,
                ),
            }),
          ],
        })
        const tenants = [crypto.randomUUID(), crypto.randomUUID(), crypto.randomUUID()]
        const records = Array.from({ length: 30 }, (_, i) =>
          workRecord({ label: `t${i}` }, { key: "one-partition", tenantId: tenants[i % 3] }),
        )
        yield* produce(topic.name, records)
        yield* startMember(consumer)
        yield* eventually(Effect.map(committedCount(group, topic.name), (n) => n === records.length))
        const rows = yield* sql<{ event_id: string; tenant_id: string; label: string }>`
        SELECT event_id::text, tenant_id::text, label FROM consumer_test_effects WHERE consumer_group = ${group}`
        expect(rows.length).toBe(records.length)
        const tenantOf = new Map(records.map((r) => [r.id, r.tenantId]))
        for (const row of rows) {
          expect(row.tenant_id).toBe(tenantOf.get(row.event_id)!)
          expect(row.label).toBe("hashinsight_app")
        }
      }),
  )
})
