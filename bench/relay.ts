/**
 * `bun run bench relay` — outbox → Kafka relay throughput and commit→Kafka latency, ours and the
 * peer `pg-transactional-outbox`, in one run, same machine, same Kafka, same workload:
 *
 * - throughput: N events written in transactions of B events (raw multi-row INSERTs into each
 *   system's outbox table, two writer connections); measured from the first commit until Kafka's
 *   end offsets of the run's topic add up to N (records acknowledged by the brokers).
 * - latency: a paced writer at R events/s, one event per transaction, for S seconds; latency is the
 *   bench's kafkajs consumer receiving the record minus the writer seeing its COMMIT return (one
 *   process, one clock).
 *
 * Each system and mode gets a fresh database and its own relay process, started before the load.
 * Flags: `bun run bench relay --help`.
 */
import { type ChildProcess, spawn } from "node:child_process"
import { PgClient } from "@effect/sql-pg"
import { Duration, Effect, Logger, LogLevel, Redacted, type Scope } from "effect"
import { Client } from "pg"
import { Kafka } from "../src/platform/kafka.ts"
import { migrate } from "../src/platform/migrator.ts"
import { projectRoot } from "../src/platform/project-root.ts"
import { choice, choices, type FlagValues, number } from "./options.ts"
import { pgtoSetupStatements } from "./peer/pgto-schema.ts"
import { type BenchRow, percentile, report } from "./report.ts"

type Mode = "wal" | "poll"
type SystemName = "hashinsight" | "pg-transactional-outbox"

const ours: SystemName = "hashinsight"
const peer: SystemName = "pg-transactional-outbox"

interface Options {
  readonly events: number
  readonly batch: number
  readonly seconds: number
  readonly rate: number
  readonly capSeconds: number
  readonly systems: ReadonlyArray<SystemName>
  readonly modes: ReadonlyArray<Mode>
}

export const flags = {
  events: number(50_000, "events of the throughput phase"),
  batch: number(250, "events per transaction in the throughput phase"),
  seconds: number(20, "how long the paced latency phase writes, s"),
  rate: number(1000, "events/s of the latency phase"),
  cap: number(90, "longest a throughput phase may take, s"),
  only: choice([ours, peer], "run one system only"),
  modes: choices<Mode>(["wal", "poll"], ["wal", "poll"], "relay modes to run"),
}

const optionsOf = (given: FlagValues<typeof flags>): Options => {
  return {
    events: given.events,
    batch: given.batch,
    seconds: given.seconds,
    rate: given.rate,
    capSeconds: given.cap,
    systems: given.only ? [given.only] : [ours, peer],
    modes: given.modes,
  }
}

const now = () => performance.now()
/** How long the latency phase waits for stragglers after the writer stopped. */
const drainSeconds = 30
const tenantId = "00000000-0000-4000-8000-00000000b0b0"
const aggregates = 1000

/** A MinerAdded-sized payload (~200 bytes of JSON). */
const payloadOf = (i: number) =>
  JSON.stringify({
    minerId: `m-${i}`,
    userId: `user-${i % aggregates}`,
    modelId: "antminer-s21-200th",
    count: 1 + (i % 7),
    site: "texas-1",
    powerPriceUsdPerKwh: 0.045,
    note: "bench event, constant size",
  })

/** How each system's outbox table takes a batch of events, as one statement. */
interface EventBatch {
  readonly ids: Array<string>
  readonly aggregateIds: Array<string>
  readonly payloads: Array<string>
}

const insertStatement: Record<SystemName, (aggregatetype: string) => string> = {
  hashinsight: (agg) =>
    `INSERT INTO event_outbox (id, aggregatetype, aggregateid, type, payload, tenant_id)
     SELECT id, '${agg}', aggregateid, 'MinerAdded', payload::jsonb, '${tenantId}'
     FROM unnest($1::uuid[], $2::text[], $3::text[]) AS t(id, aggregateid, payload)`,
  "pg-transactional-outbox": (agg) =>
    `INSERT INTO public.outbox (id, aggregate_type, aggregate_id, message_type, segment, payload)
     SELECT id, '${agg}', aggregateid, 'MinerAdded', aggregateid, payload::jsonb
     FROM unnest($1::uuid[], $2::text[], $3::text[]) AS t(id, aggregateid, payload)`,
}

const makeBatch = (from: number, count: number): EventBatch => {
  const batch: EventBatch = { ids: [], aggregateIds: [], payloads: [] }
  for (let i = from; i < from + count; i++) {
    batch.ids.push(Bun.randomUUIDv7())
    batch.aggregateIds.push(`miner-${i % aggregates}`)
    batch.payloads.push(payloadOf(i))
  }
  return batch
}

// ---------------------------------------------------------------- resources

const pgClient = (url: string) =>
  Effect.acquireRelease(
    Effect.promise(async () => {
      const c = new Client({ connectionString: url })
      await c.connect()
      return c
    }),
    (c) => Effect.promise(() => c.end()).pipe(Effect.timeout("5 seconds"), Effect.ignore),
  )

const urlFor = (database: string) => {
  const url = new URL(process.env.DATABASE_URL!)
  url.pathname = `/${database}`
  return url.toString()
}

/** A fresh database, dropped (with any replication slot left on it) when the scope closes. */
const freshDatabase = (name: string) =>
  Effect.gen(function* () {
    const admin = yield* pgClient(process.env.DATABASE_URL!)
    yield* Effect.acquireRelease(
      Effect.promise(() => admin.query(`CREATE DATABASE ${name}`)),
      () =>
        Effect.promise(async () => {
          await admin.query(
            `SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE database = $1 AND active_pid IS NOT NULL`,
            [name],
          )
          await Bun.sleep(200)
          await admin.query(
            `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = $1`,
            [name],
          )
          await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
        }).pipe(Effect.timeout("15 seconds"), Effect.ignore),
    )
    return urlFor(name)
  })

/** A relay process, stopped with SIGTERM (SIGKILL after 10 s) when the scope closes; keeps its last output. */
const relayProcess = (label: string, argv: ReadonlyArray<string>, env: Record<string, string>) =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const child = spawn(argv[0]!, argv.slice(1), {
        cwd: projectRoot,
        env: { ...process.env, ...env, NODE_NO_WARNINGS: "1", LOG_LEVEL: "WARN" },
        stdio: ["ignore", "pipe", "pipe"],
      })
      let output = ""
      const keep = (d: Buffer) => {
        output = (output + d.toString()).slice(-4000)
      }
      child.stdout?.on("data", keep)
      child.stderr?.on("data", keep)
      return { child, label, output: () => output }
    }),
    ({ child }) => stopProcess(child),
  )

const stopProcess = (child: ChildProcess) =>
  Effect.async<void>((resume) => {
    if (child.exitCode !== null || child.signalCode !== null) return resume(Effect.void)
    const timer = setTimeout(() => child.kill("SIGKILL"), 10_000)
    child.once("exit", () => {
      clearTimeout(timer)
      resume(Effect.void)
    })
    child.kill("SIGTERM")
  })

type Relay = Effect.Effect.Success<ReturnType<typeof relayProcess>>

const exitedEarly = (relay: Relay) =>
  relay.child.exitCode !== null
    ? new Error(`${relay.label} exited with ${relay.child.exitCode}: ${relay.output()}`)
    : undefined

// ---------------------------------------------------------------- measurements

const topicOffsets = (kafka: Kafka["Type"], topic: string) =>
  Effect.gen(function* () {
    const admin = yield* kafka.admin
    return yield* Effect.tryPromise(() => admin.fetchTopicOffsets(topic)).pipe(
      Effect.timeout("5 seconds"),
      Effect.map((o) => o.reduce((n, p) => n + Number(p.high), 0)),
      Effect.orElseSucceed(() => 0),
    )
  }).pipe(Effect.scoped)

/** Waits until the topic holds `count` records; returns when (ms clock) or undefined at the deadline. */
const awaitRecords = (kafka: Kafka["Type"], topic: string, count: number, deadline: number, relay: Relay) =>
  Effect.gen(function* () {
    const admin = yield* kafka.admin
    while (now() < deadline) {
      const failed = exitedEarly(relay)
      if (failed) return yield* Effect.die(failed)
      const offsets = yield* Effect.tryPromise(() => admin.fetchTopicOffsets(topic)).pipe(
        Effect.timeout("2 seconds"),
        Effect.orElseSucceed(() => []),
      )
      if (offsets.reduce((n, p) => n + Number(p.high), 0) >= count) return now()
      yield* Effect.sleep("20 millis")
    }
    return undefined
  }).pipe(Effect.scoped)

interface Run {
  readonly system: SystemName
  readonly mode: Mode
  readonly url: string
  readonly relay: Relay
  readonly kafka: Kafka["Type"]
  readonly options: Options
  readonly runId: string
}

const aggregatetypeFor = (run: Run, phase: string) => `bench_${run.runId}_${run.mode}_${phase}`

/** One event through the relay, so start-up (slot creation, leadership, connections) is not measured. */
const warmUp = (run: Run, agg: string) =>
  Effect.gen(function* () {
    const db = yield* pgClient(run.url)
    const b = makeBatch(0, 1)
    yield* Effect.promise(() =>
      db.query(insertStatement[run.system](agg), [b.ids, b.aggregateIds, b.payloads]),
    )
    const at = yield* awaitRecords(
      run.kafka,
      `events.${agg}`,
      1,
      now() + Number(process.env.BENCH_START_TIMEOUT_MS ?? 60_000),
      run.relay,
    )
    if (at === undefined)
      return yield* Effect.die(
        new Error(`${run.relay.label}: no record within 60 s of start; its output: ${run.relay.output()}`),
      )
  }).pipe(Effect.scoped)

const throughput = (run: Run) =>
  Effect.gen(function* () {
    const { events, batch, capSeconds } = run.options
    const agg = aggregatetypeFor(run, "tp")
    yield* warmUp(run, agg)
    const writers = [yield* pgClient(run.url), yield* pgClient(run.url)]
    const batches = Array.from({ length: Math.ceil(events / batch) }, (_, k) =>
      makeBatch(k * batch, Math.min(batch, events - k * batch)),
    )
    let next = 0
    let firstCommit: number | undefined
    const sql = insertStatement[run.system](agg)
    const write = (db: Client) =>
      Effect.promise(async () => {
        while (next < batches.length) {
          const b = batches[next++]!
          await db.query(sql, [b.ids, b.aggregateIds, b.payloads])
          firstCommit ??= now()
        }
      })
    const writeStart = now()
    const [written, delivered] = yield* Effect.all(
      [
        Effect.all(writers.map(write), { concurrency: "unbounded" }).pipe(Effect.map(now)),
        awaitRecords(run.kafka, `events.${agg}`, events + 1, writeStart + capSeconds * 1000, run.relay),
      ],
      { concurrency: "unbounded" },
    )
    const end = delivered ?? now()
    const inKafka = (yield* topicOffsets(run.kafka, `events.${agg}`)) - 1
    const seconds = (end - firstCommit!) / 1000
    return {
      throughput: Math.round(Math.min(inKafka, events) / seconds),
      finished: delivered !== undefined,
      inKafka,
      writeRate: Math.round(events / ((written - writeStart) / 1000)),
    }
  }).pipe(Effect.scoped)

const latency = (run: Run) =>
  Effect.gen(function* () {
    const { rate, seconds } = run.options
    const agg = aggregatetypeFor(run, "lat")
    const topic = `events.${agg}`
    const committed = new Map<string, number>()
    const received = new Map<string, number>()
    // The mock broker does not wake a waiting fetch when data arrives: a short wait bounds what
    // the consumer itself adds to each latency sample. No offset commits: kafkajs would commit
    // after every fetched batch, on the one worker that also hands out the next batches, and under
    // load those round trips held samples back by up to ~100 ms.
    const consumer = yield* run.kafka.consumer({ groupId: `bench-${agg}`, maxWaitTimeInMs: 2 })
    yield* Effect.promise(() => consumer.subscribe({ topic, fromBeginning: true }))
    yield* Effect.promise(() =>
      consumer.run({
        autoCommit: false,
        eachBatch: async ({ batch }) => {
          const t = now()
          for (const m of batch.messages) {
            const id = m.headers?.id?.toString()
            if (id && !received.has(id)) received.set(id, t)
          }
        },
      }),
    )
    yield* warmUp(run, agg)
    const total = Math.round(rate * seconds)
    const lanes = 4
    const start = now() + 50
    const sql = insertStatement[run.system](agg)
    // Open-loop pacing: event i is due at start + i/rate; a lane that falls behind does not sleep.
    const lane = (db: Client, l: number) =>
      Effect.promise(async () => {
        for (let i = l; i < total; i += lanes) {
          const wait = start + (i * 1000) / rate - now()
          if (wait > 1) await Bun.sleep(wait)
          const b = makeBatch(i, 1)
          await db.query(sql, [b.ids, b.aggregateIds, b.payloads])
          committed.set(b.ids[0]!, now())
        }
      })
    const dbs = yield* Effect.all(Array.from({ length: lanes }, () => pgClient(run.url)))
    yield* Effect.all(
      dbs.map((db, l) => lane(db, l)),
      { concurrency: "unbounded" },
    )
    const writeSeconds = (now() - start) / 1000
    const deadline = now() + drainSeconds * 1000
    while (now() < deadline && [...committed.keys()].some((id) => !received.has(id))) {
      if (exitedEarly(run.relay)) return yield* Effect.die(exitedEarly(run.relay))
      yield* Effect.sleep("100 millis")
    }
    const samples = [...committed].flatMap(([id, t]) => {
      const r = received.get(id)
      return r === undefined ? [] : [r - t]
    })
    return {
      p50: percentile(samples, 50),
      p95: percentile(samples, 95),
      p99: percentile(samples, 99),
      max: percentile(samples, 100),
      received: samples.length,
      sent: total,
      achievedRate: Math.round(total / writeSeconds),
    }
  }).pipe(Effect.scoped)

// ---------------------------------------------------------------- systems

const startRelay = (system: SystemName, mode: Mode, url: string, slot: string) =>
  Effect.gen(function* () {
    const env = { DATABASE_URL: url }
    const label = `${system} ${mode}`
    if (system === ours) {
      yield* migrate().pipe(
        Effect.provide(PgClient.layer({ url: Redacted.make(url), maxConnections: 2 })),
        Logger.withMinimumLogLevel(LogLevel.Warning),
      )
      // Slot names are server-wide: the run's own, so no other relay on this server is disturbed.
      const argv = [process.execPath, "src/bin/relay.ts", "--mode", mode, "--slot", slot]
      return yield* relayProcess(label, argv, env)
    }
    const db = yield* pgClient(url)
    for (const statement of pgtoSetupStatements(new URL(url).pathname.slice(1), mode, slot))
      yield* Effect.promise(() => db.query(statement))
    return yield* relayProcess(label, [process.execPath, "bench/peer/pgto-relay.ts", mode, slot], env)
  })

/**
 * Runs one phase against a fresh database and a fresh relay process, so a backlog one phase
 * leaves (a relay slower than the load) never leaks into the next.
 */
const phase = <A, E>(
  system: SystemName,
  mode: Mode,
  options: Options,
  kafka: Kafka["Type"],
  measurement: (run: Run) => Effect.Effect<A, E>,
) =>
  Effect.gen(function* () {
    const runId = `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`
    const url = yield* freshDatabase(`bench_${system === ours ? "hi" : "pgto"}_${mode}_${runId}`)
    const relay = yield* startRelay(system, mode, url, `bench_${runId}`)
    return yield* measurement({ system, mode, url, relay, kafka, options, runId })
  }).pipe(Effect.scoped)

const measure = (system: SystemName, mode: Mode, options: Options, kafka: Kafka["Type"]) =>
  Effect.gen(function* () {
    console.error(`[bench relay] ${system} ${mode}: throughput, ${options.events} events…`)
    const tp = yield* phase(system, mode, options, kafka, throughput)
    console.error(`[bench relay] ${system} ${mode}: ${tp.throughput} events/s; latency at ${options.rate}/s…`)
    const lat = yield* phase(system, mode, options, kafka, latency)
    return { system, mode, tp, lat }
  })

type Measured = Effect.Effect.Success<ReturnType<typeof measure>>

const rowsOf = (m: Measured, rate: number): Array<BenchRow> => {
  const latencyScenario = `${m.mode}-latency-${rate}eps`
  return [
    {
      system: m.system,
      scenario: `${m.mode}-throughput`,
      metric: "throughput",
      value: m.tp.throughput,
      unit: "events/s",
    },
    ...(["p50", "p95", "p99"] as const).map((metric) => ({
      system: m.system,
      scenario: latencyScenario,
      metric,
      value: Math.round(m.lat[metric] * 100) / 100,
      unit: "ms",
    })),
  ]
}

const notesOf = (results: ReadonlyArray<Measured>, o: Options): Array<string> => {
  const notes = [
    `throughput: ${o.events} events in transactions of ${o.batch} (multi-row INSERT via unnest, 2 writer connections, 1000 aggregates, ~200-byte JSON payload); timed from the first COMMIT returning until Kafka end offsets of the run's topic reach N (broker-acknowledged records, polled every 20 ms); relay process started and warmed with one event first; cap ${o.capSeconds} s`,
    `latency: ${o.rate} events/s open-loop for ${o.seconds} s, 1 event per transaction, 4 writer connections; sample = bench consumer receive time − writer's COMMIT return time (same process clock); includes PostgreSQL commit→relay, relay→Kafka produce ack, and the bench consumer's fetch (one kafkajs consumer in the writer's process for every system: maxWaitTimeInMs=2 as the mock Kafka does not wake waiting fetches, autoCommit off as a per-batch OffsetCommit delayed samples by up to ~100 ms under load)`,
    `both relays run as separate processes (ours: bun src/bin/relay.ts --mode M, LOG_LEVEL=WARN; peer: bench/peer/pgto-relay.ts with pg-transactional-outbox 0.5.7, logger disabled, handler awaits kafkajs producer.send with acks=-1 per message, segment = aggregate id with its segment-mutex concurrency controller in WAL mode; polling: nextMessagesBatchSize=100, pollingInterval=100 ms, library defaults otherwise)`,
    `same PostgreSQL (fsync=off, synchronous_commit=on) and Kafka (librdkafka mock, 3 brokers) for all; each system+mode on a fresh database; 2 shared cores, other developers' processes were running`,
  ]
  for (const r of results) {
    if (!r.tp.finished)
      notes.push(
        `${r.system} ${r.mode}-throughput did not deliver all ${o.events} events within ${o.capSeconds} s (${r.tp.inKafka} in Kafka): value = delivered / elapsed`,
      )
    if (r.tp.inKafka > o.events)
      notes.push(
        `${r.system} ${r.mode}: ${r.tp.inKafka - o.events} duplicate records in Kafka (at-least-once)`,
      )
    if (r.lat.received < r.lat.sent)
      notes.push(
        `${r.system} ${r.mode}-latency: only ${r.lat.received} of ${r.lat.sent} events arrived within ${drainSeconds} s after writing stopped; percentiles are over those`,
      )
    if (r.lat.achievedRate < o.rate * 0.95)
      notes.push(`${r.system} ${r.mode}-latency: the writer reached only ${r.lat.achievedRate} events/s`)
    notes.push(
      `${r.system} ${r.mode}: writer ${r.tp.writeRate} events/s during throughput; latency max ${r.lat.max.toFixed(1)} ms over ${r.lat.received} samples`,
    )
  }
  return notes
}

const goals = (results: ReadonlyArray<Measured>, rate: number): Array<string> => {
  const find = (s: SystemName, m: Mode) => results.find((r) => r.system === s && r.mode === m)
  const out: Array<string> = []
  const wal = find(ours, "wal")
  if (wal) {
    out.push(
      `goal ≥20,000 events/s WAL: ${wal.tp.throughput >= 20_000 ? "met" : "NOT met"} (${wal.tp.throughput})`,
    )
    out.push(
      `goal p50 ≤10 ms and p99 ≤50 ms at ${rate}/s (WAL): ${wal.lat.p50 <= 10 && wal.lat.p99 <= 50 ? "met" : "NOT met"} (p50 ${wal.lat.p50.toFixed(1)}, p99 ${wal.lat.p99.toFixed(1)})`,
    )
  }
  for (const mode of ["wal", "poll"] as const) {
    const a = find(ours, mode)
    const b = find(peer, mode)
    if (a && b)
      out.push(
        `goal ≥2× peer throughput (${mode}): ${a.tp.throughput >= 2 * b.tp.throughput ? "met" : "NOT met"} (${(a.tp.throughput / b.tp.throughput).toFixed(1)}×)`,
      )
  }
  return out
}

export const run = async (given: FlagValues<typeof flags>) => {
  const options = optionsOf(given)
  const program: Effect.Effect<Array<Measured>, unknown, Scope.Scope> = Effect.gen(function* () {
    const kafka = yield* Kafka.make(process.env.KAFKA_BROKERS!.split(","), "bench-relay")
    const results: Array<Measured> = []
    for (const system of options.systems)
      for (const mode of options.modes) results.push(yield* measure(system, mode, options, kafka))
    return results
  })
  const results = await Effect.runPromise(
    program.pipe(
      Effect.scoped,
      Effect.timeout(Duration.minutes(20)),
      Logger.withMinimumLogLevel(LogLevel.Warning),
    ),
  )
  report(
    "relay",
    results.flatMap((r) => rowsOf(r, options.rate)),
    [...notesOf(results, options), ...goals(results, options.rate)],
  )
}
