/**
 * `bun run bench consumer [--events N]`: one consumer member draining a backlog through the whole
 * runtime — decode, inbox row and a small effect (one INSERT) per event in the tenant's RLS
 * transaction, offsets committed after. Throughput is measured from the first effect to the last
 * (database clock, group join excluded); handler times are measured around each handler call.
 * A second scenario names a Redis lock key per event (500 users): each chunk takes its distinct keys
 * together, runs in one transaction and fences every key at commit.
 */
import { SqlClient } from "@effect/sql"
import { Duration, Effect, Fiber, Schedule, Schema } from "effect"
import { defineConsumer, on } from "../src/engine/consumer/definition.ts"
import { MemberServices, runMember } from "../src/engine/consumer/runtime.ts"
import { toKafkaMessage } from "../src/engine/record.ts"
import { defineTopic } from "../src/engine/topic.ts"
import { Kafka } from "../src/platform/kafka.ts"
import { Platform } from "../src/platform/layers.ts"
import { type FlagValues, number } from "./options.ts"
import { type BenchRow, percentile, report } from "./report.ts"

const Payload = Schema.Struct({ userId: Schema.String, n: Schema.Number })
const tenants = Array.from({ length: 4 }, () => crypto.randomUUID())

const setup = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  yield* sql`CREATE TABLE IF NOT EXISTS bench_consumer_effects (
    consumer_group text NOT NULL, event_id uuid NOT NULL, tenant_id uuid NOT NULL, n integer NOT NULL,
    at timestamptz NOT NULL DEFAULT clock_timestamp())`
  yield* sql`GRANT SELECT, INSERT ON bench_consumer_effects TO hashinsight_app`
})

const produceBacklog = (topic: string, events: number) =>
  Effect.gen(function* () {
    const kafka = yield* Kafka
    const producer = yield* kafka.producer()
    for (let start = 0; start < events; start += 1000) {
      const messages = Array.from({ length: Math.min(1000, events - start) }, (_, j) => {
        const n = start + j
        const user = `user-${n % 500}`
        return toKafkaMessage({
          id: crypto.randomUUID(),
          aggregatetype: "bench",
          aggregateid: user,
          type: "Tick",
          payload: JSON.stringify({ userId: user, n }),
          tenantId: tenants[(n % 500) % tenants.length]!,
          eventVersion: 1,
          traceparent: null,
        })
      })
      yield* Effect.promise(() => producer.send({ topic, messages }))
    }
  }).pipe(Effect.scoped)

const scenario = (name: string, events: number, locked: boolean) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const aggregate = `bench_consumer_${Date.now().toString(36)}_${locked ? "lock" : "batch"}`
    const topic = defineTopic(aggregate, { Tick: Payload })
    const group = `${aggregate}-group`
    const samples: Array<number> = []
    const consumer = defineConsumer({
      name,
      group,
      subscriptions: [
        on(
          topic,
          {
            Tick: (p, meta) =>
              Effect.gen(function* () {
                const start = performance.now()
                yield* sql`INSERT INTO bench_consumer_effects (consumer_group, event_id, tenant_id, n)
                  VALUES (${group}, ${meta.eventId}, ${meta.tenantId}, ${p.n})`
                samples.push(performance.now() - start)
              }),
          },
          locked ? { lockKey: (p) => `lock:user:${p.userId}:bench` } : {},
        ),
      ],
    })
    yield* produceBacklog(topic.name, events)
    const member = yield* Effect.fork(runMember(consumer).pipe(Effect.provide(MemberServices)))
    const count = sql<{
      n: number
    }>`SELECT count(*)::int AS n FROM event_inbox WHERE consumer_group = ${group}`
    yield* count.pipe(
      Effect.repeat({
        schedule: Schedule.spaced(Duration.millis(200)),
        until: (rows) => rows[0]!.n >= events,
      }),
      Effect.timeout(Duration.minutes(3)),
    )
    yield* Fiber.interrupt(member)
    const [span] = yield* sql<{ seconds: number; n: number }>`
      SELECT extract(epoch FROM max(at) - min(at))::float8 AS seconds, count(*)::int AS n
      FROM bench_consumer_effects WHERE consumer_group = ${group}`
    const rows: Array<BenchRow> = [
      {
        system: "hashinsight",
        scenario: name,
        metric: "throughput",
        value: span!.n / span!.seconds,
        unit: "events/s",
      },
      {
        system: "hashinsight",
        scenario: name,
        metric: "handler p50",
        value: percentile(samples, 50),
        unit: "ms",
      },
      {
        system: "hashinsight",
        scenario: name,
        metric: "handler p95",
        value: percentile(samples, 95),
        unit: "ms",
      },
      {
        system: "hashinsight",
        scenario: name,
        metric: "handler p99",
        value: percentile(samples, 99),
        unit: "ms",
      },
    ]
    yield* sql`DELETE FROM bench_consumer_effects WHERE consumer_group = ${group}`
    return { rows, effects: span!.n }
  })

export const flags = { events: number(30_000, "events per scenario") }

export const run = async ({ events }: FlagValues<typeof flags>) => {
  const program = Effect.gen(function* () {
    yield* setup
    const batch = yield* scenario("1 member, inbox + 1 insert/event", events, false)
    const locked = yield* scenario("1 member, + Redis lock key/event", events, true)
    return { rows: [...batch.rows, ...locked.rows], effects: [batch.effects, locked.effects] }
  })
  const { rows, effects } = await Effect.runPromise(program.pipe(Effect.provide(Platform.layer)))
  report("consumer", rows, [
    `${effects[0]} + ${effects[1]} events, one member, 4 partitions consumed concurrently, 4 tenants interleaved`,
    "throughput = effects / (last effect - first effect) on the database clock; group join excluded",
    "handler p* = time of the handler's INSERT inside the event transaction",
  ])
}
