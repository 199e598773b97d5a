import { describe, expect } from "bun:test"
import { SqlClient } from "@effect/sql"
import { Deferred, Effect, Fiber, Layer } from "effect"
import type { KafkaMessage } from "kafkajs"
import { replayDlqIdHeader, replayGroupHeader } from "../../src/engine/consumer/dlq.ts"
import { DlqReplay } from "../../src/ops/dlq/replay.ts"
import { Kafka } from "../../src/platform/kafka.ts"
import { withClient } from "../support/database.ts"
import { effectTest } from "../support/effect.ts"
import { faultCluster } from "../support/fault-cluster.ts"
import { uniqueId } from "../support/ids.ts"
import { cli, cliJson, insertDlq, migratedScratch } from "./dlq-fixtures.ts"

interface Summary {
  readonly sent: number
  readonly failed: number
  readonly outcomes: ReadonlyArray<{ id: number; error?: string }>
}

/** Every record of `topic`, read from the beginning by a fresh group until `n` arrived and then a quiet spell. */
const consumeAll = (topic: string, n: number) =>
  Effect.gen(function* () {
    const kafka = yield* Kafka
    const got: Array<KafkaMessage & { partition: number }> = []
    const enough = yield* Deferred.make<void>()
    const consumer = yield* kafka.consumer({ groupId: uniqueId("dlq-replay-reader") })
    yield* Effect.promise(() => consumer.subscribe({ topic, fromBeginning: true }))
    yield* Effect.promise(() =>
      consumer.run({
        eachMessage: async ({ message, partition }) => {
          got.push({ ...message, partition })
          if (got.length >= n) Deferred.unsafeDone(enough, Effect.void)
        },
      }),
    )
    yield* Deferred.await(enough).pipe(Effect.timeout("30 seconds"))
    // Anything sent twice would arrive right behind the rest.
    yield* Effect.sleep("700 millis")
    return got
  })

const header = (m: KafkaMessage, name: string) => m.headers?.[name]?.toString()

const rowsOf = (url: string) =>
  Effect.flatMap(
    SqlClient.SqlClient,
    (sql) =>
      sql<{
        id: string
        replay_status: string
        replay_count: number
        replayed_at: Date | null
        last_replay_error: string | null
      }>`
      SELECT id, replay_status, replay_count, replayed_at, last_replay_error FROM event_dlq ORDER BY id`,
  ).pipe(withClient(url))

describe("dlq replay", () => {
  effectTest(
    "re-produces each selected record to its topic with key, value and headers plus the replay headers, and marks it replaying",
    () =>
      Effect.gen(function* () {
        const db = yield* migratedScratch
        const env = { DATABASE_URL: db.url }
        const topic = uniqueId("dlq-replay")
        const group = uniqueId("g")
        const [pending, failed, replayed, old, other] = (yield* insertDlq([
          {
            group,
            topic,
            key: "k-1",
            value: '{"n":1}',
            headers: { id: "e1", eventType: "Work", traceparent: "00-ab-cd-01" },
          },
          { group, topic, key: "k-2", value: '{"n":2}', replayStatus: "failed" },
          { group, topic, key: "k-3", replayStatus: "replayed" },
          { group, topic, key: "k-4", hoursAgo: 10 },
          { group: uniqueId("other"), topic, key: "k-5" },
        ]).pipe(withClient(db.url))) as [number, number, number, number, number]

        const run = yield* cli(["replay", "--group", group, "--hours", "6", "--limit", "50", "--json"], env)
        expect(run.code).toBe(0)
        const summary = JSON.parse(run.stdout) as Summary
        expect(summary.sent).toBe(2)
        expect(summary.failed).toBe(0)
        expect(summary.outcomes.map((o) => o.id)).toEqual([pending, failed])
        expect(run.stderr).toContain("replayed 2/2")

        const records = yield* consumeAll(topic, 2)
        expect(records).toHaveLength(2)
        const byKey = new Map(records.map((m) => [m.key?.toString(), m]))
        const first = byKey.get("k-1")!
        expect(first.value?.toString()).toBe('{"n":1}')
        expect(header(first, "id")).toBe("e1")
        expect(header(first, "eventType")).toBe("Work")
        expect(header(first, "traceparent")).toBe("00-ab-cd-01")
        expect(header(first, replayGroupHeader)).toBe(group)
        expect(header(first, replayDlqIdHeader)).toBe(String(pending))
        expect(header(byKey.get("k-2")!, replayDlqIdHeader)).toBe(String(failed))

        const rows = new Map((yield* rowsOf(db.url)).map((r) => [Number(r.id), r]))
        for (const id of [pending, failed]) {
          expect(rows.get(id)).toMatchObject({ replay_status: "replaying", replay_count: 1 })
          expect(rows.get(id)?.replayed_at).toBeInstanceOf(Date)
        }
        expect(rows.get(replayed)).toMatchObject({ replay_status: "replayed", replay_count: 0 })
        expect(rows.get(old)).toMatchObject({ replay_status: "pending", replay_count: 0 })
        expect(rows.get(other)).toMatchObject({ replay_status: "pending", replay_count: 0 })

        // Explicit ids are replayed whatever their status.
        const forced = yield* cliJson<Summary>(["replay", "--id", String(replayed), "--id", String(old)], env)
        expect(forced.outcomes.map((o) => o.id)).toEqual([replayed, old])
        const after = yield* consumeAll(topic, 4)
        expect(after.map((m) => header(m, replayDlqIdHeader)).sort()).toEqual(
          [pending, failed, replayed, old].map(String).sort(),
        )
      }),
    { timeout: 60_000 },
  )

  effectTest(
    "a replayed entry sent again by id while a fresh failure of its event has an open entry is sent and stays replayed",
    () =>
      Effect.gen(function* () {
        const db = yield* migratedScratch
        const topic = uniqueId("dlq-twin")
        const group = uniqueId("g")
        const eventId = crypto.randomUUID()
        const [old, open] = (yield* insertDlq([
          { group, topic, eventId, replayStatus: "replayed" },
          { group, topic, eventId },
        ]).pipe(withClient(db.url))) as [number, number]
        const summary = yield* cliJson<Summary>(["replay", "--id", String(old)], { DATABASE_URL: db.url })
        expect(summary).toMatchObject({ sent: 1, failed: 0 })
        const [record] = yield* consumeAll(topic, 1)
        expect(header(record!, replayDlqIdHeader)).toBe(String(old))
        const rows = new Map((yield* rowsOf(db.url)).map((r) => [Number(r.id), r]))
        expect(rows.get(old)).toMatchObject({ replay_status: "replayed", replay_count: 1 })
        expect(rows.get(open)).toMatchObject({ replay_status: "pending", replay_count: 0 })
      }),
    { timeout: 60_000 },
  )

  effectTest(
    "a dry run lists what would be replayed and changes nothing, in the database or in Kafka",
    () =>
      Effect.gen(function* () {
        const db = yield* migratedScratch
        const topic = uniqueId("dlq-dry")
        const group = uniqueId("g")
        const ids = yield* insertDlq([
          { group, topic },
          { group, topic, replayStatus: "failed" },
        ]).pipe(withClient(db.url))
        const kafka = yield* Kafka
        const producer = yield* kafka.producer()
        yield* Effect.promise(() => producer.send({ topic, messages: [{ value: "marker" }] }))
        const before = yield* rowsOf(db.url)

        const dry = yield* cliJson<{ dryRun: boolean; entries: Array<{ id: number }> }>(
          ["replay", "--group", group, "--dry-run"],
          { DATABASE_URL: db.url },
        )
        expect(dry.dryRun).toBe(true)
        expect(dry.entries.map((e) => e.id)).toEqual(ids)
        const one = yield* cliJson<{ entries: Array<{ id: number }> }>(
          ["replay", "--id", String(ids[1]), "--dry-run"],
          {
            DATABASE_URL: db.url,
          },
        )
        expect(one.entries.map((e) => e.id)).toEqual([ids[1]!])
        const text = yield* cli(["replay", "--group", group, "--dry-run"], { DATABASE_URL: db.url })
        expect(text.stdout).toContain("Dry run: would replay 2 entries (nothing changed)")

        expect(yield* rowsOf(db.url)).toEqual(before)
        const admin = yield* kafka.admin
        const offsets = yield* Effect.promise(() => admin.fetchTopicOffsets(topic))
        expect(offsets.reduce((n, o) => n + Number(o.high), 0)).toBe(1)
      }),
    { timeout: 30_000 },
  )

  effectTest(
    "two replays at once send each entry exactly once between them",
    () =>
      Effect.gen(function* () {
        const db = yield* migratedScratch
        const topic = uniqueId("dlq-race")
        const group = uniqueId("g")
        const n = 1000
        const ids = yield* insertDlq(
          Array.from({ length: n }, (_, i) => ({ group, topic, key: `k-${i % 7}` })),
        ).pipe(withClient(db.url))
        const [a, b] = yield* Effect.all(
          [
            cliJson<Summary>(["replay", "--topic", topic], { DATABASE_URL: db.url }),
            cliJson<Summary>(["replay", "--topic", topic], { DATABASE_URL: db.url }),
          ],
          { concurrency: 2 },
        )
        const sentIds = [...a.outcomes, ...b.outcomes].map((o) => o.id)
        expect(a.sent + b.sent).toBe(n)
        expect(new Set(sentIds).size).toBe(n)

        const records = yield* consumeAll(topic, n)
        expect(records).toHaveLength(n)
        expect(new Set(records.map((m) => header(m, replayDlqIdHeader)))).toEqual(new Set(ids.map(String)))
        const rows = yield* rowsOf(db.url)
        expect(rows.every((r) => r.replay_status === "replaying" && r.replay_count === 1)).toBe(true)
      }),
    { timeout: 60_000 },
  )

  effectTest(
    "a replay skips entries another transaction holds, and a later replay sends them",
    () =>
      Effect.gen(function* () {
        const db = yield* migratedScratch
        const env = { DATABASE_URL: db.url }
        const topic = uniqueId("dlq-locked")
        const group = uniqueId("g")
        const ids = yield* insertDlq(Array.from({ length: 6 }, () => ({ group, topic }))).pipe(
          withClient(db.url),
        )
        const held = ids.slice(0, 3)
        const locked = yield* Deferred.make<void>()
        const release = yield* Deferred.make<void>()
        const holder = yield* Effect.fork(
          Effect.flatMap(SqlClient.SqlClient, (sql) =>
            sql.withTransaction(
              Effect.gen(function* () {
                yield* sql`SELECT id FROM event_dlq WHERE id IN ${sql.in(held)} FOR UPDATE`
                yield* Deferred.succeed(locked, undefined)
                yield* Deferred.await(release)
              }),
            ),
          ).pipe(withClient(db.url)),
        )
        yield* Deferred.await(locked)
        const first = yield* cliJson<Summary>(["replay", "--topic", topic], env)
        expect(first.outcomes.map((o) => o.id)).toEqual(ids.slice(3))
        yield* Deferred.succeed(release, undefined)
        yield* Fiber.join(holder)
        const second = yield* cliJson<Summary>(["replay", "--topic", topic], env)
        expect(second.outcomes.map((o) => o.id)).toEqual(held)
        expect(yield* consumeAll(topic, 6)).toHaveLength(6)
      }),
    { timeout: 60_000 },
  )

  effectTest(
    "an entry Kafka refuses keeps its previous status and gets the error; the others are sent",
    () =>
      Effect.gen(function* () {
        const db = yield* migratedScratch
        const cluster = yield* faultCluster({ brokers: 1 })
        const topic = uniqueId("dlq-refused")
        const group = uniqueId("g")
        yield* Effect.promise(() => cluster.partitions(topic, 1))
        const ids = yield* insertDlq([
          { group, topic },
          { group, topic, replayStatus: "failed" },
          { group, topic },
        ]).pipe(withClient(db.url))
        const kafka = yield* Kafka.make(cluster.brokers, uniqueId("dlq-fault"))
        // Warm the producer's metadata so the injected error hits a Produce request, not a lookup.
        const warm = yield* kafka.producer()
        yield* Effect.promise(() => warm.send({ topic, messages: [{ value: "warm" }] }))
        // TOPIC_AUTHORIZATION_FAILED is not retriable: the producer gives up on that send at once.
        yield* Effect.promise(() => cluster.produceErrors(29, 1))
        const summary = yield* Effect.flatMap(DlqReplay, (r) =>
          r.run({ topic, statuses: ["pending", "failed"] }, 10, 3, () => Effect.void),
        ).pipe(
          Effect.provide(DlqReplay.layer.pipe(Layer.provide(Layer.succeed(Kafka, kafka)))),
          withClient(db.url),
        )
        expect(summary.sent).toBe(2)
        expect(summary.failed).toBe(1)
        const refused = summary.outcomes.find((o) => o.error !== undefined)!
        expect(refused.error).toMatch(/authoriz/i)
        const previous = ids[1] === refused.id ? "failed" : "pending"
        for (const row of yield* rowsOf(db.url)) {
          if (Number(row.id) === refused.id) {
            expect(row).toMatchObject({ replay_status: previous, replayed_at: null, replay_count: 1 })
            expect(row.last_replay_error).toMatch(/authoriz/i)
          } else {
            expect(row).toMatchObject({
              replay_status: "replaying",
              replay_count: 1,
              last_replay_error: null,
            })
          }
        }
      }),
    { timeout: 60_000 },
  )
})
