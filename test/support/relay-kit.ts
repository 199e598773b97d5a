/**
 * What the relay tests share: a migrated scratch database per test (so a relay sees only that
 * test's rows and its slot is dropped with it), a topic of its own, writers through the real
 * Outbox, a Kafka reader that collects every record of a topic, and the relay CLI as a subprocess.
 */
import { join } from "node:path"
import { SqlClient } from "@effect/sql"
import { Duration, Effect, Fiber, Layer, Redacted, Schedule, Schema } from "effect"
import type { IHeaders, KafkaMessage } from "kafkajs"
import { Outbox } from "../../src/engine/outbox.ts"
import { type RelayConfig, relayDefaults } from "../../src/engine/relay/index.ts"
import { defineTopic } from "../../src/engine/topic.ts"
import { Kafka } from "../../src/platform/kafka.ts"
import { migrate } from "../../src/platform/migrator.ts"
import { projectRoot } from "../../src/platform/project-root.ts"
import { clientFor } from "./database.ts"
import { uniqueId } from "./ids.ts"

/** A migrated database of its own; on release its backends are ended, its slots dropped, it is dropped. */
export const relayDatabase = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  const name = uniqueId("relay").replaceAll("-", "_")
  // Slots outlive their relay's death for a moment and block DROP DATABASE, so end the walsenders,
  // then drop the slots, retrying until they are gone.
  const dropSlots = Effect.gen(function* () {
    yield* sql`SELECT pg_terminate_backend(pid) FROM pg_stat_activity
               WHERE datname = ${name} AND pid <> pg_backend_pid()`
    yield* sql`SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots
               WHERE database = ${name} AND NOT active`
    const left = yield* sql`SELECT 1 FROM pg_replication_slots WHERE database = ${name}`
    if (left.length > 0) return yield* Effect.fail("slots still active")
  })
  yield* Effect.acquireRelease(sql.unsafe(`CREATE DATABASE ${name}`), () =>
    dropSlots.pipe(
      Effect.retry({ schedule: Schedule.spaced("100 millis"), times: 100 }),
      Effect.zipRight(sql.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)),
      Effect.orDie,
    ),
  )
  const url = new URL(process.env.DATABASE_URL!)
  url.pathname = `/${name}`
  // One pool for the whole test, closed before the database is dropped.
  const layer = Layer.succeedContext(yield* Layer.build(clientFor(url.toString())).pipe(Effect.orDie))
  yield* migrate().pipe(Effect.provide(layer), Effect.orDie)
  return { name, url: url.toString(), layer }
})

export type RelayDatabase = Effect.Effect.Success<typeof relayDatabase>

export const relayConfigFor = (db: RelayDatabase, overrides: Partial<RelayConfig> = {}): RelayConfig => ({
  ...relayDefaults,
  slot: `t_${db.name}`.slice(0, 63),
  databaseUrl: Redacted.make(db.url),
  pollInterval: Duration.millis(200),
  standbyPoll: Duration.millis(200),
  ...overrides,
})

/** A topic no other test writes to. */
export const testTopic = () =>
  defineTopic(uniqueId("relaytest").replaceAll("-", "_"), {
    Happened: Schema.Struct({
      aggregate: Schema.String,
      n: Schema.Number,
      note: Schema.optional(Schema.String),
    }),
    Noted: Schema.Struct({ text: Schema.String }),
  })
export type TestTopic = ReturnType<typeof testTopic>

export const tenantId = "6f0c1e0a-4b1d-4c5e-9a77-5d0b6b0c0a01"

/** One committed transaction of `Happened` events for one aggregate; returns their ids. */
export const commitEvents = (
  db: RelayDatabase,
  topic: TestTopic,
  aggregate: string,
  ns: ReadonlyArray<number>,
) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const outbox = yield* Outbox
    return yield* sql.withTransaction(
      outbox.append(
        topic,
        ns.map((n) => ({
          type: "Happened" as const,
          aggregateId: aggregate,
          tenantId,
          payload: { aggregate, n },
        })),
      ),
    )
  }).pipe(Effect.provide(Layer.merge(db.layer, Outbox.layer)))

/**
 * One writer per aggregate, each committing 1–3 events per transaction, numbered in write order,
 * until `stop`; `written` holds the ids of every committed event.
 */
export const startWriters = (db: RelayDatabase, topic: TestTopic, aggregates: ReadonlyArray<string>) =>
  Effect.gen(function* () {
    let writing = true
    const written: Array<string> = []
    const fiber = yield* Effect.forEach(
      aggregates,
      (agg) =>
        Effect.gen(function* () {
          let n = 0
          while (writing) {
            const size = 1 + Math.floor(Math.random() * 3)
            const ns = Array.from({ length: size }, () => ++n)
            written.push(...(yield* commitEvents(db, topic, agg, ns)))
            yield* Effect.sleep("15 millis")
          }
        }),
      { concurrency: "unbounded", discard: true },
    ).pipe(Effect.forkScoped)
    const stop = Effect.suspend(() => {
      writing = false
      return Fiber.join(fiber)
    })
    return { written, stop }
  })

export interface Received {
  readonly topic: string
  readonly partition: number
  readonly offset: string
  readonly key: string
  readonly value: string
  readonly headers: Record<string, string>
}

const headerMap = (headers: IHeaders | undefined) =>
  Object.fromEntries(Object.entries(headers ?? {}).map(([k, v]) => [k, String(v)]))

/** Reads a topic from the beginning with a fresh group and keeps every record, duplicates included. */
export const collectTopic = (topic: string) =>
  Effect.gen(function* () {
    const kafka = yield* Kafka
    const received: Array<Received> = []
    const seen = new Map<number, bigint>()
    const consumer = yield* kafka.consumer({ groupId: uniqueId("relay-test"), sessionTimeout: 10_000 })
    yield* Effect.promise(() => consumer.subscribe({ topic, fromBeginning: true }))
    yield* Effect.promise(() =>
      consumer.run({
        eachMessage: async ({ partition, message }: { partition: number; message: KafkaMessage }) => {
          received.push({
            topic,
            partition,
            offset: message.offset,
            key: message.key?.toString() ?? "",
            value: message.value?.toString() ?? "",
            headers: headerMap(message.headers),
          })
          seen.set(partition, BigInt(message.offset))
        },
      }),
    )
    const ids = () => new Set(received.map((r) => r.headers.id))
    /** Waits until every id arrived. */
    const waitFor = (wanted: ReadonlyArray<string>, timeout: Duration.DurationInput = "30 seconds") =>
      Effect.suspend(() => {
        const have = ids()
        const missing = wanted.filter((id) => !have.has(id))
        return missing.length === 0
          ? Effect.void
          : Effect.fail(`${missing.length} of ${wanted.length} events not in Kafka yet`)
      }).pipe(
        Effect.retry(Schedule.spaced("100 millis")),
        Effect.timeoutFail({ duration: timeout, onTimeout: () => "timed out" }),
      )
    /** Waits until everything now in the topic has been read (call once no relay writes any more). */
    const drain = Effect.gen(function* () {
      const admin = yield* kafka.admin
      const ends = yield* Effect.promise(() => admin.fetchTopicOffsets(topic))
      yield* Effect.suspend(() =>
        ends.every((p) => BigInt(p.high) === 0n || (seen.get(p.partition) ?? -1n) >= BigInt(p.high) - 1n)
          ? Effect.void
          : Effect.fail("behind"),
      ).pipe(Effect.retry({ schedule: Schedule.spaced("100 millis") }), Effect.timeout("30 seconds"))
    }).pipe(Effect.scoped)
    return { received, waitFor, drain }
  })

export interface RelayProcess {
  readonly pid: number
  readonly output: () => string
  readonly alive: () => boolean
  readonly waitForLine: (text: string, timeout?: Duration.DurationInput) => Effect.Effect<void, string>
  readonly kill: (signal: NodeJS.Signals) => Effect.Effect<number>
}

/** `bun src/bin/relay.ts ...` against the test database; killed with SIGKILL if still running at scope end. */
export const spawnRelay = (
  db: RelayDatabase,
  args: ReadonlyArray<string>,
  env: Record<string, string> = {},
) =>
  Effect.gen(function* () {
    let out = ""
    const proc = yield* Effect.acquireRelease(
      Effect.sync(() =>
        Bun.spawn([process.execPath, join(projectRoot, "src/bin/relay.ts"), ...args], {
          cwd: projectRoot,
          env: { ...process.env, DATABASE_URL: db.url, NODE_NO_WARNINGS: "1", LOG_LEVEL: "Info", ...env },
          stdout: "pipe",
          stderr: "pipe",
        }),
      ),
      (p) => Effect.sync(() => p.kill("SIGKILL")).pipe(Effect.zipRight(Effect.promise(() => p.exited))),
    )
    const pump = async (stream: ReadableStream<Uint8Array>) => {
      const decoder = new TextDecoder()
      for await (const chunk of stream) out += decoder.decode(chunk)
    }
    void pump(proc.stdout)
    void pump(proc.stderr)
    const waitForLine = (text: string, timeout: Duration.DurationInput = "30 seconds") =>
      Effect.suspend(() => (out.includes(text) ? Effect.void : Effect.fail("not yet"))).pipe(
        Effect.retry({ schedule: Schedule.spaced("50 millis") }),
        Effect.timeoutFail({
          duration: timeout,
          onTimeout: () => `relay did not log '${text}'; its output:\n${out}`,
        }),
      )
    const kill = (signal: NodeJS.Signals) =>
      Effect.sync(() => proc.kill(signal)).pipe(Effect.zipRight(Effect.promise(() => proc.exited)))
    const alive = () => proc.exitCode === null && proc.signalCode === null
    return { pid: proc.pid, output: () => out, alive, waitForLine, kill } satisfies RelayProcess
  })

/** Per aggregate, the order in which each `n` first arrived (duplicates ignored). */
export const firstOccurrenceOrder = (received: ReadonlyArray<Received>) => {
  const firstSeen = new Set<string>()
  const order = new Map<string, Array<number>>()
  for (const r of received) {
    if (firstSeen.has(r.headers.id!)) continue
    firstSeen.add(r.headers.id!)
    const { aggregate, n } = JSON.parse(r.value) as { aggregate: string; n: number }
    order.set(aggregate, [...(order.get(aggregate) ?? []), n])
  }
  return order
}

/** Per aggregate whose events first arrived out of write order: the order they arrived in. */
export const outOfOrder = (received: ReadonlyArray<Received>) =>
  [...firstOccurrenceOrder(received)]
    .filter(([, ns]) => ns.some((n, i) => i > 0 && n < ns[i - 1]!))
    .map(([agg, ns]) => ({ agg, ns }))

/** Distinct event ids among the records. */
export const distinctIds = (received: ReadonlyArray<Received>) => new Set(received.map((r) => r.headers.id!))

/** How many records from index `from` on carry an event id that an earlier record already had. */
export const resentFrom = (received: ReadonlyArray<Received>, from: number) => {
  const seen = distinctIds(received.slice(0, from))
  let resent = 0
  for (const r of received.slice(from)) {
    if (seen.has(r.headers.id!)) resent++
    else seen.add(r.headers.id!)
  }
  return resent
}
