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

/** What `bun run dlq replay` sends: the original record plus the two replay headers. */
const replayOf = (r: TestRecord, group: string, dlqId: string): TestRecord => ({
  ...r,
  headers: { ...r.headers, [replayGroupHeader]: group, [replayDlqIdHeader]: dlqId },
})

describe("DLQ replay protocol", () => {
  effectTest(
    "a replay for this group is processed once and closes its DLQ row; another group's replay is skipped; a failing replay updates the same row",
    () =>
      Effect.gen(function* () {
        yield* ensureEffectsTable
        const sql = yield* SqlClient.SqlClient
        const topic = workTopic()
        const group = uniqueId("replay-group")
        const broken = new Set(["later-fixed", "still-broken"])
        const consumer = defineConsumer({
          name: "replay-test",
          group,
          subscriptions: [
            on(topic, {
              Work: (p, meta) =>
                broken.has(p.label)
                  ? new Fatal({ message: `${p.label} broken` })
                  : writeEffect(group, meta.eventId, meta.tenantId, p.label),
            }),
          ],
        })
        const key = { key: "replay-partition" }
        const fixed = workRecord({ label: "later-fixed" }, key)
        const still = workRecord({ label: "still-broken" }, key)
        const done = workRecord({ label: "done" }, key)
        yield* produce(topic.name, [fixed, still, done])
        yield* startMember(consumer)
        yield* eventually(Effect.map(committedCount(group, topic.name), (n) => n === 3))
        const first = yield* dlqRows(group)
        expect(first.length).toBe(2)
        const dlqId = (eventId: string) => first.find((d) => d.event_id === eventId)!.id

        // Someone also parked `done` for this group (say by hand) — its effect already happened.
        const [parked] = yield* sql<{ id: string }>`
          INSERT INTO event_dlq (event_id, consumer_group, topic, partition, "offset", error_tag, error_message, tenant_id)
          VALUES (${done.id}, ${group}, ${topic.name}, 0, 2, 'Fatal', 'parked', ${done.tenantId}) RETURNING id::text`
        broken.delete("later-fixed")
        yield* produce(topic.name, [
          replayOf(fixed, "some-other-group", dlqId(fixed.id)),
          replayOf(fixed, group, dlqId(fixed.id)),
          replayOf(fixed, group, dlqId(fixed.id)),
          replayOf(still, group, dlqId(still.id)),
          replayOf(done, group, parked!.id),
        ])
        yield* eventually(Effect.map(committedCount(group, topic.name), (n) => n === 8))

        const effects = yield* effectCounts(group)
        expect(effects.get(fixed.id)).toBe(1)
        expect(effects.get(done.id)).toBe(1)
        expect(effects.has(still.id)).toBe(false)

        const after = yield* dlqRows(group)
        expect(after.length).toBe(3) // no new row for the failed replay
        const row = (id: string) => after.find((d) => d.id === id)!
        expect(row(dlqId(fixed.id)).replay_status).toBe("replayed")
        expect(row(parked!.id).replay_status).toBe("replayed")
        const failed = row(dlqId(still.id))
        expect(failed.replay_status).toBe("failed")
        expect(failed.last_replay_error).toContain("still-broken broken")
        expect(failed.history.length).toBe(1)
        expect(failed.history[0]).toMatchObject({ error_tag: "Fatal", attempts: 1 })
        const inbox = yield* sql<{ n: number }>`
          SELECT count(*)::int AS n FROM event_inbox WHERE consumer_group = ${group}`
        expect(inbox[0]!.n).toBe(2)
      }),
    { timeout: 60_000 },
  )
})
