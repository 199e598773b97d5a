/**
 * Helpers for consumer-runtime tests: a table the test handlers write their effects to, records
 * produced straight to Kafka in the contract format, and waits on what the group has committed.
 */
import { join } from "node:path"
import { SqlClient } from "@effect/sql"
import { Deferred, Duration, Effect, Schedule, Schema } from "effect"
import type { IHeaders } from "kafkajs"
import type { ConsumerDefinition } from "../../src/engine/consumer/definition.ts"
import { type MemberOptions, MemberServices, runMember } from "../../src/engine/consumer/runtime.ts"
import { toKafkaMessage } from "../../src/engine/record.ts"
import { defineTopic } from "../../src/engine/topic.ts"
import { Kafka } from "../../src/platform/kafka.ts"
import { uniqueId } from "./ids.ts"

/** Every test handler's effect is one row here; exactly-once means one row per (group, event). */
export const ensureEffectsTable = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  yield* sql`CREATE TABLE IF NOT EXISTS consumer_test_effects (
    consumer_group text NOT NULL,
    event_id uuid NOT NULL,
    tenant_id uuid NOT NULL,
    label text NOT NULL DEFAULT '',
    at timestamptz NOT NULL DEFAULT clock_timestamp()
  )`
  yield* sql`GRANT SELECT, INSERT ON consumer_test_effects TO hashinsight_app`
})

/** The effect a test handler makes, inside the runtime's tenant transaction. */
export const writeEffect = (group: string, eventId: string, tenantId: string, label = "") =>
  Effect.flatMap(
    SqlClient.SqlClient,
    (sql) =>
      sql`INSERT INTO consumer_test_effects (consumer_group, event_id, tenant_id, label)
          VALUES (${group}, ${eventId}, ${tenantId}, ${label})`,
  )

export const effectCounts = (group: string) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const rows = yield* sql<{ event_id: string; n: number }>`
      SELECT event_id::text, count(*)::int AS n FROM consumer_test_effects
      WHERE consumer_group = ${group} GROUP BY event_id`
    return new Map(rows.map((r) => [r.event_id, r.n]))
  })

export const WorkPayload = Schema.Struct({ label: Schema.String, n: Schema.optional(Schema.Number) })

/** A fresh topic (own aggregate type) with one `Work` event type. */
export const workTopic = () => defineTopic(uniqueId("ctest").replaceAll("-", "_"), { Work: WorkPayload })

export interface TestRecord {
  readonly key: string
  readonly value: string | null
  readonly headers: IHeaders
}

export const workRecord = (
  payload: typeof WorkPayload.Type,
  options: { id?: string; tenantId?: string; key?: string; type?: string } = {},
): TestRecord & { readonly id: string; readonly tenantId: string } => {
  const id = options.id ?? crypto.randomUUID()
  const tenantId = options.tenantId ?? testTenant
  const m = toKafkaMessage({
    id,
    aggregatetype: "unused",
    aggregateid: options.key ?? id,
    type: options.type ?? "Work",
    payload: JSON.stringify(payload),
    tenantId,
    traceparent: null,
    eventVersion: 1,
  })
  return { id, tenantId, key: m.key as string, value: m.value as string, headers: m.headers! }
}

export const testTenant = "00000000-0000-4000-8000-00000000c0de"

export const produce = (topic: string, records: ReadonlyArray<TestRecord>) =>
  Effect.gen(function* () {
    const kafka = yield* Kafka
    const producer = yield* kafka.producer()
    yield* Effect.promise(() => producer.send({ topic, messages: [...records] }))
  }).pipe(Effect.scoped)

/** Sum of the group's committed offsets on `topic` (all partitions). */
export const committedCount = (group: string, topic: string) =>
  Effect.gen(function* () {
    const kafka = yield* Kafka
    const admin = yield* kafka.admin
    const [offsets] = yield* Effect.promise(() => admin.fetchOffsets({ groupId: group, topics: [topic] }))
    return (offsets?.partitions ?? []).reduce((sum, p) => sum + Math.max(0, Number(p.offset)), 0)
  }).pipe(Effect.scoped)

/**
 * Moves the group's committed offsets back to 0 on every partition of `topic`. The mock cluster has
 * no admin offset reset, so a throwaway member of the group commits them.
 */
export const rewindGroup = (group: string, topic: string) =>
  Effect.gen(function* () {
    const kafka = yield* Kafka
    const consumer = yield* kafka.consumer({ groupId: group, ...fastGroup })
    const joined = yield* Deferred.make<ReadonlyArray<number>>()
    consumer.on(consumer.events.GROUP_JOIN, (e) =>
      Deferred.unsafeDone(joined, Effect.succeed(e.payload.memberAssignment[topic] ?? [])),
    )
    yield* Effect.promise(() => consumer.subscribe({ topic }))
    yield* Effect.promise(() =>
      consumer.run({ autoCommit: false, eachBatchAutoResolve: false, eachBatch: async () => {} }),
    )
    const partitions = yield* Deferred.await(joined)
    yield* Effect.promise(() =>
      consumer.commitOffsets(partitions.map((partition) => ({ topic, partition, offset: "0" }))),
    )
  }).pipe(Effect.scoped)

/** Polls `check` until it holds (or the timeout fails the test). */
export const eventually = <E, R>(check: Effect.Effect<boolean, E, R>, timeout = Duration.seconds(30)) =>
  check.pipe(
    Effect.filterOrFail(
      (ok) => ok,
      () => "not yet" as const,
    ),
    Effect.retry(Schedule.spaced(Duration.millis(100))),
    Effect.timeoutFail({ duration: timeout, onTimeout: () => new Error("condition not reached in time") }),
    Effect.asVoid,
  )

/** The mock cluster drops a member that left only after its session timeout: keep that short. */
export const fastGroup = { sessionTimeout: 6000, heartbeatInterval: 500, rebalanceTimeout: 6000 }

/**
 * Runs a member in the test's scope (stopped, draining, when the test ends). Its group's dead
 * letters go when the test ends, after the member: the database is often the main one, whose DLQ
 * a later `bun run services` reports as waiting for an operator.
 */
export const startMember = <R>(def: ConsumerDefinition<R>, options: Partial<MemberOptions> = {}) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    yield* Effect.addFinalizer(() =>
      Effect.ignore(sql`DELETE FROM event_dlq WHERE consumer_group = ${def.group}`),
    )
    return yield* Effect.forkScoped(
      runMember(def, {
        sessionTimeoutMs: fastGroup.sessionTimeout,
        heartbeatIntervalMs: fastGroup.heartbeatInterval,
        rebalanceTimeoutMs: fastGroup.rebalanceTimeout,
        ...options,
      }).pipe(Effect.provide(MemberServices)),
    )
  })

export const dlqRows = (group: string) =>
  Effect.flatMap(
    SqlClient.SqlClient,
    (sql) => sql<{
      id: string
      event_id: string | null
      error_tag: string
      error_message: string
      attempts: number
      partition: number
      offset: string
      key: string | null
      value: string | null
      headers: Record<string, string>
      tenant_id: string | null
      replay_status: string
      last_replay_error: string | null
      history: ReadonlyArray<Record<string, unknown>>
    }>`SELECT id::text, event_id::text, error_tag, error_message, attempts, partition, "offset"::text,
              key, value, headers, tenant_id::text, replay_status, last_replay_error, history
       FROM event_dlq WHERE consumer_group = ${group} ORDER BY id`,
  )

const memberScript = join(import.meta.dir, "consumer-process.ts")

/**
 * A member of `group` in a process of its own (consumer-process.ts), killed at the latest when the
 * test's scope closes. Quiet unless `MEMBER_LOG_LEVEL` (e.g. `Info`) asks for its logs.
 */
export const spawnMember = (
  aggregatetype: string,
  group: string,
  options: { readonly locked?: boolean; readonly metricsPort?: number } = {},
) =>
  Effect.acquireRelease(
    Effect.sync(() =>
      Bun.spawn(
        [process.execPath, memberScript, aggregatetype, group, ...(options.locked ? ["--locked"] : [])],
        {
          env: {
            ...process.env,
            LOG_LEVEL: process.env.MEMBER_LOG_LEVEL ?? "Error",
            NODE_NO_WARNINGS: "1",
            // STACK.md's figure for the mock: the default 20 ms spins idle members on a box the
            // test shares with the processes it starts and kills.
            KAFKA_FETCH_MAX_WAIT_MS: "100",
            ...(options.metricsPort === undefined ? {} : { METRICS_PORT: String(options.metricsPort) }),
          },
          stdout: process.env.MEMBER_LOG_LEVEL ? "inherit" : "ignore",
          stderr: "inherit",
        },
      ),
    ),
    (member) => Effect.sync(() => member.kill("SIGKILL")),
  )
