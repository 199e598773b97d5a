import { describe, expect } from "bun:test"
import { SqlClient } from "@effect/sql"
import { Effect } from "effect"
import { type DeadLetter, markReplayFailed, writeDeadLetter } from "../../src/engine/consumer/dlq.ts"
import { testTenant } from "../support/consumer-fixtures.ts"
import { effectTest } from "../support/effect.ts"
import { uniqueId } from "../support/ids.ts"

const deadLetter = (
  group: string,
  eventId: string | null,
  offset: string,
  errorMessage: string,
): DeadLetter => ({
  group,
  topic: "events.race",
  partition: 0,
  offset,
  key: "k",
  value: "{}",
  headers: {},
  eventId,
  eventType: eventId === null ? null : "Work",
  tenantId: eventId === null ? null : testTenant,
  errorTag: "Fatal",
  errorMessage,
  attempts: 1,
})

const rowsOf = (group: string) =>
  Effect.flatMap(
    SqlClient.SqlClient,
    (sql) => sql<{ id: string; event_id: string | null; occurrences: number; replay_status: string }>`
      SELECT id::text, event_id::text, occurrences, replay_status FROM event_dlq
      WHERE consumer_group = ${group} ORDER BY id`,
  )

describe("dead letters of one record", () => {
  effectTest(
    "members dead-lettering the same record at once (a rebalance) leave one open entry that counts each of them; a replayed entry does not stop a fresh one",
    () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const group = uniqueId("dlq-race")
        yield* Effect.addFinalizer(() =>
          Effect.ignore(sql`DELETE FROM event_dlq WHERE consumer_group = ${group}`),
        )
        const eventId = crypto.randomUUID()
        const replayed = yield* writeDeadLetter(deadLetter(group, eventId, "0", "long ago"))
        yield* sql`UPDATE event_dlq SET replay_status = 'replayed' WHERE id = ${replayed.id}`

        const n = 12
        const race = (eventId: string | null, offset: string) =>
          Effect.all(
            Array.from({ length: n }, (_, i) =>
              writeDeadLetter(deadLetter(group, eventId, offset, `try ${i}`)),
            ),
            { concurrency: "unbounded" },
          )
        const [byEvent, byRecord] = yield* Effect.all([race(eventId, "7"), race(null, "9")], {
          concurrency: 2,
        })
        const rows = yield* rowsOf(group)
        expect(
          rows.map(({ event_id, occurrences, replay_status }) => ({ event_id, occurrences, replay_status })),
        ).toEqual([
          { event_id: eventId, occurrences: 1, replay_status: "replayed" },
          { event_id: eventId, occurrences: n, replay_status: "pending" },
          { event_id: null, occurrences: n, replay_status: "pending" },
        ])
        // Each writer counted exactly once, on one entry per record.
        for (const written of [byEvent, byRecord]) {
          expect(new Set(written.map((w) => w.id)).size).toBe(1)
          expect(written.map((w) => w.occurrences).sort((a, b) => a - b)).toEqual(
            Array.from({ length: n }, (_, i) => i + 1),
          )
        }
      }),
  )

  effectTest(
    "a replay of an entry replayed already that fails again while a fresh failure's entry is open leaves the old entry closed and goes to the open one",
    () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const group = uniqueId("dlq-twin")
        yield* Effect.addFinalizer(() =>
          Effect.ignore(sql`DELETE FROM event_dlq WHERE consumer_group = ${group}`),
        )
        const eventId = crypto.randomUUID()
        const old = yield* writeDeadLetter(deadLetter(group, eventId, "0", "first"))
        yield* sql`UPDATE event_dlq SET replay_status = 'replayed' WHERE id = ${old.id}`
        const open = yield* writeDeadLetter(deadLetter(group, eventId, "5", "fresh"))
        expect(open.id).not.toBe(old.id)

        const updated = yield* markReplayFailed(group, old.id, {
          errorTag: "Fatal",
          errorMessage: "again",
          attempts: 1,
        })
        expect(updated).toBe(false)
        // What the processor does then: the failure counts on the open entry.
        const written = yield* writeDeadLetter(deadLetter(group, eventId, "0", "again"))
        expect(written).toEqual({ id: open.id, occurrences: 2 })
        expect((yield* rowsOf(group)).map((r) => [r.id, r.replay_status, r.occurrences])).toEqual([
          [old.id, "replayed", 1],
          [open.id, "pending", 2],
        ])
      }),
  )
})
