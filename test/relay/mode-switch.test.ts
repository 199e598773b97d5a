/**
 * Switching relay modes, and a slot dropped under a running WAL relay, while writers keep
 * committing: what was delivered before is not sent again — at most the events delivered since the
 * delivered watermark last moved (the in-flight window) — and nothing is lost or reordered.
 */
import { describe, expect } from "bun:test"
import { SqlClient } from "@effect/sql"
import { Effect, Fiber, Schedule } from "effect"
import { outboxBacklog, type RelayMode, runRelay } from "../../src/engine/relay/index.ts"
import { effectTest } from "../support/effect.ts"
import {
  collectTopic,
  distinctIds,
  outOfOrder,
  type RelayDatabase,
  relayConfigFor,
  relayDatabase,
  resentFrom,
  startWriters,
  testTopic,
} from "../support/relay-kit.ts"

const aggregates = ["agg-0", "agg-1", "agg-2", "agg-3"]
/** What the first WAL relay delivers before the switch: all of it still in retention. */
const deliveredFirst = 1500
/** Most events a switch may send again: the in-flight window, far below `deliveredFirst`. */
const resendLimit = 200

const startRelay = (db: RelayDatabase, mode: RelayMode) =>
  runRelay(relayConfigFor(db, { mode })).pipe(Effect.provide(db.layer), Effect.fork)

const until = (condition: () => boolean, what: string) =>
  Effect.suspend(() => (condition() ? Effect.void : Effect.fail(what))).pipe(
    Effect.retry(Schedule.spaced("50 millis")),
    Effect.timeoutFail({ duration: "60 seconds", onTimeout: () => `timed out waiting for ${what}` }),
  )

describe.each(["kept", "dropped"] as const)(
  "WAL → poll → WAL under writes, the slot %s meanwhile",
  (slotDuringPoll) => {
    effectTest(
      "the poll relay and the returning WAL relay send again at most the in-flight window; nothing lost, order kept",
      () =>
        Effect.gen(function* () {
          const db = yield* relayDatabase
          const topic = testTopic()
          const kafka = yield* collectTopic(topic.name)
          const sql = yield* Effect.provide(SqlClient.SqlClient, db.layer)
          const { written, stop } = yield* startWriters(db, topic, aggregates)
          const delivered = () => distinctIds(kafka.received).size

          /** Runs a relay until `more` new events are in Kafka, stops it (a drain, like SIGTERM). */
          const phase = (mode: RelayMode, more: number) =>
            Effect.gen(function* () {
              const from = kafka.received.length
              const target = delivered() + more
              const relay = yield* startRelay(db, mode)
              yield* until(() => delivered() >= target, `${target} events in Kafka (${mode})`)
              yield* Fiber.interrupt(relay)
              yield* kafka.drain
              return resentFrom(kafka.received, from)
            })

          yield* phase("wal", deliveredFirst)
          const walDelivered = delivered()
          const resentByPoll = yield* phase("poll", 1000)
          console.log(
            `WAL → poll: ${walDelivered} delivered by WAL first, ${resentByPoll} sent again by poll`,
          )
          expect(resentByPoll).toBeLessThanOrEqual(resendLimit)
          // Back to WAL: resuming the slot from its position before the poll run, or catching up on a
          // new one from the table.
          if (slotDuringPoll === "dropped")
            yield* sql`SELECT pg_drop_replication_slot(${relayConfigFor(db).slot})`
          const from = kafka.received.length
          const relay = yield* startRelay(db, "wal")
          const target = delivered() + 1000
          yield* until(() => delivered() >= target, `${target} events in Kafka (wal again)`)
          yield* stop
          yield* kafka.waitFor(written, "60 seconds")

          // Everything is in Kafka and nothing more is written: the records are all read.
          yield* kafka.drain
          const resentByWal = resentFrom(kafka.received, from)
          console.log(`poll → WAL: ${written.length} committed in all, ${resentByWal} sent again by WAL`)
          expect(resentByWal).toBeLessThanOrEqual(resendLimit)

          // Once the watermark covers every row, the poll-mode backlog counts none of the rows the
          // WAL relays delivered and left unmarked.
          yield* sql<{ covered: boolean }>`
          SELECT (SELECT below FROM relay_delivered) > max(txid) AS covered FROM event_outbox`.pipe(
            Effect.filterOrFail((rows) => rows[0]?.covered === true),
            Effect.retry(Schedule.spaced("100 millis")),
            Effect.timeout("15 seconds"),
          )
          const [unmarked] = yield* sql<{ n: number }>`
          SELECT count(*)::int AS n FROM event_outbox WHERE published_at IS NULL`
          expect(unmarked!.n).toBeGreaterThan(deliveredFirst)
          expect((yield* Effect.provide(outboxBacklog, db.layer)).unpublished).toBe(0)
          yield* Fiber.interrupt(relay)

          const ids = distinctIds(kafka.received)
          expect(written.filter((id) => !ids.has(id))).toEqual([])
          expect(outOfOrder(kafka.received)).toEqual([])
        }),
      { timeout: 150_000 },
    )
  },
)

describe("WAL relay under writes", () => {
  effectTest(
    "a slot dropped under a running WAL relay and created again: its catch-up sends again at most the in-flight window",
    () =>
      Effect.gen(function* () {
        const db = yield* relayDatabase
        const topic = testTopic()
        const kafka = yield* collectTopic(topic.name)
        const sql = yield* Effect.provide(SqlClient.SqlClient, db.layer)
        const { slot } = relayConfigFor(db)
        const { written, stop } = yield* startWriters(db, topic, aggregates)
        const delivered = () => distinctIds(kafka.received).size

        const relay = yield* startRelay(db, "wal")
        yield* until(() => delivered() >= deliveredFirst, `${deliveredFirst} events in Kafka`)
        const from = kafka.received.length
        yield* Effect.gen(function* () {
          yield* sql`SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots
                     WHERE slot_name = ${slot} AND active_pid IS NOT NULL`
          yield* sql`SELECT pg_drop_replication_slot(${slot})`
        }).pipe(Effect.retry(Schedule.spaced("20 millis")), Effect.timeout("15 seconds"))

        // The relay steps down, creates the slot again and catches up from the table.
        const caughtUp = sql<{ done: boolean }>`
          SELECT acked_lsn IS NOT NULL AND EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = ${slot}) AS done
          FROM relay_state WHERE name = ${slot}`
        yield* caughtUp.pipe(
          Effect.filterOrFail((rows) => rows[0]?.done === true),
          Effect.retry(Schedule.spaced("100 millis")),
          Effect.timeout("30 seconds"),
        )
        const target = delivered() + 1000
        yield* until(() => delivered() >= target, `${target} events in Kafka after the new slot`)
        yield* stop
        yield* kafka.waitFor(written, "60 seconds")
        yield* Fiber.interrupt(relay)
        yield* kafka.drain

        const resent = resentFrom(kafka.received, from)
        console.log(
          `slot dropped after ${from} records: ${written.length} committed, ${resent} sent again by the new slot's catch-up`,
        )
        expect(resent).toBeLessThanOrEqual(resendLimit)
        const ids = distinctIds(kafka.received)
        expect(written.filter((id) => !ids.has(id))).toEqual([])
        expect(outOfOrder(kafka.received)).toEqual([])
      }),
    { timeout: 120_000 },
  )
})
