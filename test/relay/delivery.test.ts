import { describe, expect } from "bun:test"
import { SqlClient } from "@effect/sql"
import { Duration, Effect, Layer, Option, Schedule } from "effect"
import { Outbox } from "../../src/engine/outbox.ts"
import { type RelayMode, runRelay, slotLag } from "../../src/engine/relay/index.ts"
import { lsnToBigInt } from "../../src/engine/relay/lsn.ts"
import { Kafka } from "../../src/platform/kafka.ts"
import { effectTest } from "../support/effect.ts"
import { uniqueId } from "../support/ids.ts"
import {
  collectTopic,
  commitEvents,
  type RelayDatabase,
  relayConfigFor,
  relayDatabase,
  tenantId,
  testTopic,
} from "../support/relay-kit.ts"

const traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

const startRelay = (db: RelayDatabase, mode: RelayMode, overrides = {}) =>
  runRelay(relayConfigFor(db, { mode, ...overrides })).pipe(Effect.provide(db.layer), Effect.forkScoped)

describe.each(["wal", "poll"] as const)("%s relay", (mode) => {
  effectTest(
    "publishes nothing of a rolled-back transaction and every event of a committed one, in order and in the record format",
    () =>
      Effect.gen(function* () {
        const db = yield* relayDatabase
        const topic = testTopic()
        const kafka = yield* collectTopic(topic.name)
        yield* startRelay(db, mode)

        const rolledBack = yield* Effect.gen(function* () {
          const sql = yield* SqlClient.SqlClient
          const outbox = yield* Outbox
          const ids: Array<string> = []
          yield* sql
            .withTransaction(
              outbox
                .append(topic, [
                  { type: "Happened", aggregateId: "agg-1", tenantId, payload: { aggregate: "agg-1", n: 0 } },
                ])
                .pipe(
                  Effect.tap((written) => ids.push(...written)),
                  Effect.zipRight(Effect.fail("roll back")),
                ),
            )
            .pipe(Effect.ignore)
          return ids
        }).pipe(Effect.provide(Layer.merge(db.layer, Outbox.layer)))
        expect(rolledBack).toHaveLength(1)

        const committed = yield* Effect.gen(function* () {
          const sql = yield* SqlClient.SqlClient
          const outbox = yield* Outbox
          return yield* sql.withTransaction(
            Effect.gen(function* () {
              const happened = yield* outbox.append(topic, [
                { type: "Happened", aggregateId: "agg-1", tenantId, payload: { aggregate: "agg-1", n: 1 } },
                {
                  type: "Happened",
                  aggregateId: "agg-2",
                  tenantId,
                  traceparent,
                  payload: { aggregate: "agg-2", n: 1, note: "traced" },
                },
              ])
              const noted = yield* outbox.append(topic, [
                { type: "Noted", aggregateId: "agg-1", tenantId, payload: { text: 'héllo "quoted"' } },
              ])
              const last = yield* outbox.append(topic, [
                { type: "Happened", aggregateId: "agg-1", tenantId, payload: { aggregate: "agg-1", n: 2 } },
              ])
              return [...happened, ...noted, ...last]
            }),
          )
        }).pipe(Effect.provide(Layer.merge(db.layer, Outbox.layer)))

        yield* kafka.waitFor(committed)
        yield* kafka.drain
        const [a1n1, a2n1, a1noted, a1n2] = committed
        const received = kafka.received.map((r) => ({
          key: r.key,
          value: JSON.parse(r.value),
          headers: r.headers,
          partition: r.partition,
        }))
        // The mock may reorder nothing within a partition; agg-1's events share one.
        expect(received.filter((r) => r.key === "agg-1").map((r) => r.headers.id)).toEqual([
          a1n1,
          a1noted,
          a1n2,
        ])
        expect(received.find((r) => r.key === "agg-2")).toMatchObject({
          value: { aggregate: "agg-2", n: 1, note: "traced" },
          headers: { id: a2n1!, eventType: "Happened", tenantId, eventVersion: "1", traceparent },
        })
        expect(received.find((r) => r.headers.id === a1noted)).toEqual({
          key: "agg-1",
          value: { text: 'héllo "quoted"' },
          headers: { id: a1noted!, eventType: "Noted", tenantId, eventVersion: "1" },
          partition: received.find((r) => r.headers.id === a1n1)!.partition,
        })
        expect(received).toHaveLength(4)
        expect(received.some((r) => rolledBack.includes(r.headers.id!))).toBe(false)
        // value is the payload as compact JSON, exactly what Debezium's expand.json.payload emits
        for (const r of kafka.received) expect(r.value).toBe(JSON.stringify(JSON.parse(r.value)))
        expect(kafka.received.every((r) => r.topic === `events.${topic.aggregatetype}`)).toBe(true)
      }),
    { timeout: 60_000 },
  )

  effectTest(
    "deletes rows older than the retention once they are in Kafka",
    () =>
      Effect.gen(function* () {
        const db = yield* relayDatabase
        const topic = testTopic()
        const kafka = yield* collectTopic(topic.name)
        yield* startRelay(db, mode, { retention: Duration.zero, retentionInterval: Duration.millis(200) })
        const ids = yield* commitEvents(db, topic, "agg-r", [1, 2, 3])
        yield* kafka.waitFor(ids)
        const remaining = Effect.gen(function* () {
          const sql = yield* SqlClient.SqlClient
          const rows = yield* sql<{
            n: number
          }>`SELECT count(*)::int AS n FROM event_outbox WHERE id IN ${sql.in(ids)}`
          return rows[0]?.n ?? -1
        }).pipe(Effect.provide(db.layer))
        yield* remaining.pipe(
          Effect.repeat({ schedule: Schedule.spaced("200 millis"), until: (n) => n === 0 }),
          Effect.timeout("15 seconds"),
        )
        expect(yield* remaining).toBe(0)
      }),
    { timeout: 60_000 },
  )

  effectTest(
    "with a linger, commits arriving meanwhile leave in one send: one Kafka record batch",
    () =>
      Effect.gen(function* () {
        const db = yield* relayDatabase
        const topic = testTopic()
        const kafka = yield* Kafka
        const batches: Array<number> = []
        const consumer = yield* kafka.consumer({ groupId: uniqueId("linger-test"), sessionTimeout: 10_000 })
        yield* Effect.promise(() => consumer.subscribe({ topic: topic.name, fromBeginning: true }))
        yield* Effect.promise(() =>
          consumer.run({
            eachBatch: async ({ batch }) => {
              batches.push(batch.messages.length)
            },
          }),
        )
        const received = (n: number) =>
          Effect.suspend(() =>
            batches.reduce((a, b) => a + b, 0) >= n ? Effect.void : Effect.fail("waiting"),
          ).pipe(Effect.retry(Schedule.spaced("50 millis")), Effect.timeout("30 seconds"))
        // A linger well beyond the five commits below (about 250 ms here, more on a loaded CI box).
        yield* startRelay(db, mode, { linger: Duration.millis(1000) })
        // The relay streams (and the consumer reads) before the commits under test.
        yield* commitEvents(db, topic, "lingering", [0])
        yield* received(1)
        // Five transactions 50 ms apart, one event each, on one aggregate (so one partition): all within
        // the linger of the first. Without a linger each would leave in a send of its own.
        for (const n of [1, 2, 3, 4, 5]) {
          yield* commitEvents(db, topic, "lingering", [n])
          yield* Effect.sleep("50 millis")
        }
        yield* received(6)
        expect(batches).toEqual([1, 5])
      }),
    { timeout: 60_000 },
  )
})

describe("wal relay slot", () => {
  effectTest(
    "is acknowledged while idle, so it does not hold WAL written by other tables",
    () =>
      Effect.gen(function* () {
        const db = yield* relayDatabase
        const config = relayConfigFor(db, { mode: "wal" })
        yield* runRelay(config).pipe(Effect.provide(db.layer), Effect.forkScoped)
        const sql = yield* Effect.provide(SqlClient.SqlClient, db.layer)
        const lag = slotLag(config.slot).pipe(Effect.provide(db.layer))
        yield* lag.pipe(Effect.repeat({ schedule: Schedule.spaced("100 millis"), until: Option.isSome }))
        const [after] = yield* Effect.gen(function* () {
          yield* sql`CREATE TABLE filler (n int, pad text)`
          yield* sql`INSERT INTO filler SELECT g, repeat('x', 200) FROM generate_series(1, 20000) g`
          return yield* sql<{ lsn: string }>`SELECT pg_current_wal_lsn()::text AS lsn`
        }).pipe(Effect.provide(db.layer))
        const confirmed = sql<{ lsn: string }>`
          SELECT confirmed_flush_lsn::text AS lsn FROM pg_replication_slots WHERE slot_name = ${config.slot}`.pipe(
          Effect.map((rows) => lsnToBigInt(rows[0]?.lsn ?? "0/0")),
          Effect.provide(db.layer),
        )
        yield* confirmed.pipe(
          Effect.repeat({
            schedule: Schedule.spaced("200 millis"),
            until: (lsn) => lsn >= lsnToBigInt(after!.lsn),
          }),
          Effect.timeout("15 seconds"),
        )
        const now = yield* lag
        expect(Option.isSome(now) && now.value.active).toBe(true)
      }),
    { timeout: 60_000 },
  )
})

describe("wal relay delivered watermark", () => {
  effectTest(
    "covers what the relay delivered, then stays put while the relay idles: an idle relay writes nothing",
    () =>
      Effect.gen(function* () {
        const db = yield* relayDatabase
        const topic = testTopic()
        const kafka = yield* collectTopic(topic.name)
        yield* startRelay(db, "wal")
        const sql = yield* Effect.provide(SqlClient.SqlClient, db.layer)
        yield* kafka.waitFor(yield* commitEvents(db, topic, "agg-w", [1, 2, 3]))
        const watermark = sql<{ covered: boolean; at: string }>`
          SELECT d.below > (SELECT max(txid) FROM event_outbox) AS covered, d.updated_at::text AS at
          FROM relay_delivered d`.pipe(Effect.map((rows) => rows[0]))
        const covered = yield* watermark.pipe(
          Effect.filterOrFail((w) => w?.covered === true),
          Effect.retry(Schedule.spaced("100 millis")),
          Effect.timeout("15 seconds"),
        )
        // Many rounds of the watermark loop and of the keepalive.
        yield* Effect.sleep("3 seconds")
        expect(yield* watermark).toEqual(covered)
      }),
    { timeout: 60_000 },
  )
})
