/**
 * `bun run bench e2e [--rate 1000] [--seconds 60] [--sweep 100,200,300,400,500,600,800] [--step-seconds 5]
 * [--cpu-prof api|relay|member]` —
 * write → read end to end: POST /api/miners (Idempotency-Key) → outbox → WAL relay → Kafka →
 * portfolio consumer group → the user's `portfolios` row. Each write adds a holding for a user of
 * its own, so the write's recalculation is recognisable: latency = that row's `computed_at` minus
 * the moment the request was sent. Processes, as in `bun run services`: the API, the relay and a
 * portfolio member are subprocesses on a scratch database; the load generator is a subprocess of
 * its own, open loop at a fixed rate (it reports how late it sent, to show when it is the limit).
 * After a warm-up, a sweep of rates finds the highest write rate the pipeline sustains; then the
 * fixed rate runs.
 *
 * `--cpu-prof` runs that process under Bun's `--cpu-prof` and prints where the profile went (Bun
 * attributes some native time to whichever JS frame runs first: read it as a rough picture).
 *
 * `bun bench/e2e.ts member <group>` and `bun bench/e2e.ts load <json>` are those subprocesses.
 */

import { readdirSync, readFileSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { SqlClient } from "@effect/sql"
import { type Subprocess, spawn } from "bun"
import { Effect, Layer, Redacted, Schedule } from "effect"
import { runMain } from "../src/bin/main.ts"
import { memberLayer } from "../src/engine/consumer/runtime.ts"
import { Outbox } from "../src/engine/outbox.ts"
import { portfolioConsumer } from "../src/hashinsight/consumers/portfolio.ts"
import { updateMarketData } from "../src/hashinsight/ops/market-data.ts"
import { createTenant } from "../src/http/tenants.ts"
import { Platform } from "../src/platform/layers.ts"
import { projectRoot } from "../src/platform/project-root.ts"
import { embeddedKafkaBrokers, freePort, runningPids, spawnKafkaMock } from "../src/platform/stack/index.ts"
import { startGroupAtEnd } from "../test/support/e2e-platform.ts"
import { choice, type FlagValues, number, numbers } from "./options.ts"
import { type BenchRow, percentile, report } from "./report.ts"

interface LoadPlan {
  readonly url: string
  readonly apiKey: string
  readonly rate: number
  readonly seconds: number
  readonly prefix: string
  readonly out: string
}

interface Sent {
  readonly user: string
  /** Epoch ms when the request left. */
  readonly sentAt: number
  readonly status: number
  readonly responseMs: number
}

interface LoadResult {
  readonly sent: ReadonlyArray<Sent>
  /** Sampled writes watched through GET /api/portfolio/{user}: sent → first answer showing it (ms). */
  readonly readVisible: ReadonlyArray<number>
  /** How late requests left against their schedule (ms): the generator's own limit. */
  readonly lagP99: number
  readonly lagMax: number
  /** Not sent because too many were in flight (the system under test could not keep up). */
  readonly shed: number
  readonly elapsedMs: number
  /** The generator's own CPU (user + system), ms. */
  readonly cpuMs: number
}

/** The subprocesses `--cpu-prof` can profile. */
const profilable = ["api", "relay", "member"] as const

const maxInFlight = 2048
/** Before the measurement: enough writes that the JIT has compiled the hot paths and the tables
 * hold a few thousand rows when they are analysed (see the ANALYZE below). */
const warmUp = { rate: 200, seconds: 10 }
/** The goal's latency bound (issue 8: p95 ≤ 100 ms at 1,000 writes/s). */
const goalP95Ms = 100
/** Writes watched through the read API at once, and how often each is polled (the reads are load too). */
const maxWatched = 2
const watchIntervalMs = 20

/**
 * CPU seconds (user + system) a process has used so far, from /proc (Linux, 100 ticks/s); 0 once
 * gone. With `reaped`, also what its exited children used once it waited for them.
 */
const cpuOf = (pid: number | undefined, reaped = false) => {
  if (pid === undefined) return 0
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8")
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
    const own = Number(fields[11]) + Number(fields[12])
    return (reaped ? own + Number(fields[13]) + Number(fields[14]) : own) / 100
  } catch {
    return 0
  }
}

/**
 * Every process with this command name: PostgreSQL forks a backend per connection. A backend that
 * exits takes its CPU out of the sum, so each process's reaped children count too: the postmaster
 * reaps the backends (a backend that exits in the window counts whole, its time before the window
 * included, which errs high, where leaving it out made the figure negative).
 */
const cpuOfAll = (comm: string) =>
  readdirSync("/proc")
    .filter((d) => /^\d+$/.test(d))
    .reduce((sum, pid) => {
      try {
        return readFileSync(`/proc/${pid}/comm`, "utf8").trim() === comm
          ? sum + cpuOf(Number(pid), true)
          : sum
      } catch {
        return sum
      }
    }, 0)

/** The load generator process: open loop, `rate` writes per second for `seconds`. */
const generateLoad = async (plan: LoadPlan) => {
  const total = Math.round(plan.rate * plan.seconds)
  const sent: Array<Sent> = []
  const lags: Array<number> = []
  let shed = 0
  let inFlight = 0
  const pending = new Set<Promise<void>>()
  const readVisible: Array<number> = []
  let watched = 0
  /** Polls the user's portfolio until the read shows the holding (or 60 s pass). */
  const watch = async (user: string, sentAt: number) => {
    watched += 1
    try {
      const deadline = performance.now() + 60_000
      while (performance.now() < deadline) {
        const r = await fetch(`${plan.url}/api/portfolio/${user}`, {
          headers: { Authorization: `Bearer ${plan.apiKey}` },
        })
        const body = (await r.json()) as { minerCount?: number }
        if (r.status === 200 && (body.minerCount ?? 0) > 0) {
          readVisible.push(performance.timeOrigin + performance.now() - sentAt)
          return
        }
        await Bun.sleep(watchIntervalMs)
      }
    } finally {
      watched -= 1
    }
  }
  const send = (i: number) => {
    const user = `${plan.prefix}-${i}`
    const sentAt = performance.timeOrigin + performance.now()
    const started = performance.now()
    inFlight += 1
    const p = fetch(`${plan.url}/api/miners`, {
      method: "POST",
      headers: {
        Authorization: `Bearer ${plan.apiKey}`,
        "Content-Type": "application/json",
        "Idempotency-Key": `${plan.prefix}-${i}`,
      },
      body: JSON.stringify({
        userId: user,
        modelId: "antminer-s21",
        count: 1 + (i % 5),
        site: "bench",
        powerPriceUsdPerKwh: 0.05,
      }),
    })
      .then(async (r) => {
        await r.arrayBuffer()
        sent.push({ user, sentAt, status: r.status, responseMs: performance.now() - started })
        if (r.status === 201 && watched < maxWatched) await watch(user, sentAt)
      })
      .catch(() => {
        sent.push({ user, sentAt, status: 0, responseMs: performance.now() - started })
      })
      .finally(() => {
        inFlight -= 1
        pending.delete(p)
      })
    pending.add(p)
  }
  const start = performance.now()
  const cpuAtStart = process.cpuUsage()
  let next = 0
  await new Promise<void>((resolve) => {
    const timer = setInterval(() => {
      const now = performance.now()
      const due = Math.min(total, Math.floor(((now - start) / 1000) * plan.rate))
      for (; next < due; next++) {
        lags.push(now - (start + (next * 1000) / plan.rate))
        if (inFlight >= maxInFlight) shed += 1
        else send(next)
      }
      if (next >= total) {
        clearInterval(timer)
        resolve()
      }
    }, 1)
  })
  await Promise.all(pending)
  lags.sort((a, b) => a - b)
  const result: LoadResult = {
    sent,
    readVisible,
    lagP99: percentile(lags, 99),
    lagMax: lags[lags.length - 1] ?? 0,
    shed,
    elapsedMs: performance.now() - start,
    cpuMs: ((u) => (u.user + u.system) / 1000)(process.cpuUsage(cpuAtStart)),
  }
  writeFileSync(plan.out, JSON.stringify(result))
}

/**
 * The embedded mock keeps every message set and walks a partition's list from the start on each
 * fetch, so its cost grows with everything ever produced to `events.miner`: the bench gets a fresh
 * mock of its own. Brokers named in KAFKA_BROKERS (a real cluster) are used as they are.
 */
const privateKafka = Effect.acquireRelease(
  Effect.promise(async () => {
    const given = process.env.KAFKA_BROKERS
    if (given && given !== embeddedKafkaBrokers()) return { brokers: given, private: false, pid: undefined }
    const log = join(tmpdir(), `bench-e2e-kafka-${process.pid}.log`)
    const { pid, brokers } = await spawnKafkaMock(log, { detached: false })
    return { brokers, private: true, pid }
  }),
  ({ pid }) => Effect.sync(() => pid !== undefined && process.kill(pid, "SIGTERM")),
).pipe(
  Effect.tap(({ brokers }) =>
    Effect.sync(() => {
      process.env.KAFKA_BROKERS = brokers
    }),
  ),
)

const childEnv = (databaseUrl: string, port: number) => ({
  ...process.env,
  DATABASE_URL: databaseUrl,
  PORT: String(port),
  LOG_LEVEL: "WARN",
  NODE_NO_WARNINGS: "1",
  DB_POOL_MAX: "20",
})

const child = (
  argv: ReadonlyArray<string>,
  env: Record<string, string | undefined>,
  bunArgs: ReadonlyArray<string> = [],
) =>
  Effect.acquireRelease(
    Effect.sync(() =>
      spawn([process.execPath, ...bunArgs, ...argv], {
        cwd: projectRoot,
        env,
        stdout: "inherit",
        stderr: "inherit",
      }),
    ),
    (p: Subprocess) =>
      Effect.promise(async () => {
        p.kill("SIGTERM")
        const exited = await Promise.race([p.exited, Bun.sleep(10_000).then(() => undefined)])
        if (exited === undefined) p.kill("SIGKILL")
      }),
  )

/** The run's own database, which bench/run.ts made and migrates, and drops with its slots after. */
const database = () => {
  const url = process.env.DATABASE_URL!
  return { name: new URL(url).pathname.slice(1), url }
}

interface Outcome {
  readonly target: number
  readonly achieved: number
  readonly ok: number
  readonly failed: number
  readonly shed: number
  readonly visible: number
  readonly http: ReadonlyArray<number>
  readonly visibility: ReadonlyArray<number>
  /** Sampled writes: sent → the portfolio read (GET, through the cache) shows the holding. */
  readonly read: ReadonlyArray<number>
  /** Sent → outbox row written (API transaction start). */
  readonly api: ReadonlyArray<number>
  /** The member's transactions that claimed these writes' events (distinct inbox `processed_at`). */
  readonly memberTransactions: number
  /** Outbox row → inbox row (WAL relay, Kafka, the member's fetch and queue). */
  readonly pipeline: ReadonlyArray<number>
  readonly lagP99: number
  readonly lagMax: number
  /** CPU per accepted write (ms) by process, over the scenario (load and the wait for visibility). */
  readonly cpuPerWrite: Readonly<Record<string, number>>
}

const stats = (xs: ReadonlyArray<number>) => {
  const sorted = [...xs].sort((a, b) => a - b)
  return { p50: percentile(sorted, 50), p95: percentile(sorted, 95), p99: percentile(sorted, 99) }
}

const legsText = (o: Outcome) =>
  `${(["api", "pipeline"] as const)
    .map((leg) => {
      const { p50, p95 } = stats(o[leg])
      return `${leg} p50/p95 ${p50.toFixed(0)}/${p95.toFixed(0)} ms`
    })
    .join(
      ", ",
    )}, ${(o.pipeline.length / Math.max(1, o.memberTransactions)).toFixed(1)} events per member transaction`

const cpuText = (o: Outcome) =>
  `${Object.entries(o.cpuPerWrite)
    .map(([name, ms]) => `${name} ${ms.toFixed(2)}`)
    .join(", ")} ms (total ${Object.values(o.cpuPerWrite)
    .reduce((a, b) => a + b, 0)
    .toFixed(2)})`

export const flags = {
  rate: number(1000, "writes/s of the fixed-rate scenario"),
  seconds: number(60, "how long the fixed rate runs, s"),
  sweep: numbers(
    [100, 200, 300, 400, 500, 600, 800],
    "rates of the sweep for the highest sustained one (empty: none)",
  ),
  "step-seconds": number(5, "how long each sweep step runs, s"),
  "cpu-prof": choice(profilable, "run that process under Bun's --cpu-prof"),
}

export const run = async (given: FlagValues<typeof flags>) => {
  const profiled = given["cpu-prof"]
  const profileDir = join(tmpdir(), `bench-e2e-cpu-prof-${process.pid}`)
  const profileArgs = (name: string) =>
    profiled === name ? ["--cpu-prof", `--cpu-prof-dir=${profileDir}`] : []
  const { rate, seconds, sweep } = given
  const stepSeconds = given["step-seconds"]
  const dir = tmpdir()

  const program = Effect.gen(function* () {
    const kafka = yield* privateKafka
    const kafkaNote = kafka.private
      ? "a fresh librdkafka mock cluster of the bench's own (the mock scans a partition's whole history on every fetch, so a long-lived one gets slower)"
      : `KAFKA_BROKERS=${kafka.brokers}`
    const db = database()
    const { tenant } = yield* Effect.gen(function* () {
      const tenant = yield* createTenant(`bench-e2e-${Date.now().toString(36)}`)
      // Portfolios get revenue figures, as in production: the tenant has market data.
      yield* updateMarketData(tenant.id, {
        btcPriceUsd: 100_000,
        difficulty: 1.1e14,
        blockRewardBtc: 3.125,
        feesBtcPerBlock: 0.1,
      })
      return { tenant }
    }).pipe(Effect.provide(Outbox.layer))
    const apiKey = Redacted.value(tenant.apiKey)
    const port = yield* Effect.promise(freePort)
    const env = childEnv(db.url, port)
    const group = `${portfolioConsumer.group}-bench-${Date.now().toString(36)}`
    yield* startGroupAtEnd(
      group,
      portfolioConsumer.subscriptions.map((s) => s.topic.name),
    ).pipe(Effect.provide(Platform.layerKafka))
    const api = yield* child(["src/bin/api.ts"], env, profileArgs("api"))
    // Slot names are per cluster: the database's own name keeps the bench off anyone else's slot.
    const relay = yield* child(
      ["src/bin/relay.ts", "--mode", "wal", "--slot", db.name],
      env,
      profileArgs("relay"),
    )
    const member = yield* child(["bench/e2e.ts", "member", group], env, profileArgs("member"))
    const redisPid = runningPids().redis
    /** CPU seconds so far of each process of the pipeline (PostgreSQL: every backend of the cluster). */
    const cpuNow = () => ({
      api: cpuOf(api.pid),
      postgres: cpuOfAll("postgres"),
      member: cpuOf(member.pid),
      relay: cpuOf(relay.pid),
      kafka: cpuOf(kafka.pid),
      redis: cpuOf(redisPid),
    })
    const url = `http://127.0.0.1:${port}`
    yield* Effect.tryPromise(() => fetch(`${url}/openapi.json`)).pipe(
      Effect.filterOrFail((r) => r.ok),
      Effect.retry(Schedule.spaced("200 millis").pipe(Schedule.upTo("60 seconds"))),
    )

    const sql = yield* SqlClient.SqlClient
    const computedAt = (prefix: string) =>
      sql<{ user_id: string; at: number }>`
        SELECT user_id, extract(epoch FROM computed_at) * 1000 AS at FROM portfolios
        WHERE tenant_id = ${tenant.id} AND user_id LIKE ${`${prefix}-%`}`.pipe(
        Effect.map((rows) => new Map(rows.map((r) => [r.user_id, Number(r.at)]))),
      )

    /** When each write's event was written (outbox) and claimed by the member (inbox), per user. */
    const legsOf = (prefix: string) =>
      sql<{ user_id: string; written: number; claimed: number }>`
        SELECT o.payload->>'userId' AS user_id, extract(epoch FROM o.created_at) * 1000 AS written,
               extract(epoch FROM i.processed_at) * 1000 AS claimed
        FROM event_outbox o JOIN event_inbox i ON i.event_id = o.id AND i.consumer_group = ${group}
        WHERE o.tenant_id = ${tenant.id} AND o.type = 'MinerAdded'
          AND o.payload->>'userId' LIKE ${`${prefix}-%`}`.pipe(
        Effect.map(
          (rows) =>
            new Map(rows.map((r) => [r.user_id, { written: Number(r.written), claimed: Number(r.claimed) }])),
        ),
      )

    let runs = 0
    const scenario = (target: number, secs: number) =>
      Effect.gen(function* () {
        const prefix = `r${runs++}-${target}`
        const out = join(dir, `bench-e2e-${process.pid}-${prefix}.json`)
        const plan: LoadPlan = { url, apiKey, rate: target, seconds: secs, prefix, out }
        const cpuBefore = cpuNow()
        const load = spawn([process.execPath, "bench/e2e.ts", "load", JSON.stringify(plan)], {
          cwd: projectRoot,
          env: { ...process.env, NODE_NO_WARNINGS: "1" },
          stdout: "inherit",
          stderr: "inherit",
        })
        yield* Effect.promise(() => load.exited)
        const result = JSON.parse(readFileSync(out, "utf8")) as LoadResult
        const ok = result.sent.filter((s) => s.status === 201)
        // Wait until every accepted write is visible, or 20 s have passed without progress.
        let seen = new Map<string, number>()
        let lastCount = -1
        let idleSince = Date.now()
        while (seen.size < ok.length && Date.now() - idleSince < 20_000) {
          yield* Effect.sleep("250 millis")
          seen = yield* computedAt(prefix)
          if (seen.size !== lastCount) {
            lastCount = seen.size
            idleSince = Date.now()
          }
        }
        const visibility = ok.flatMap((s) => {
          const at = seen.get(s.user)
          return at === undefined ? [] : [at - s.sentAt]
        })
        const cpuAfter = cpuNow()
        const perWrite = (seconds: number) => (ok.length === 0 ? 0 : (seconds * 1000) / ok.length)
        const cpuPerWrite: Record<string, number> = {}
        for (const [name, before] of Object.entries(cpuBefore))
          cpuPerWrite[name] = perWrite(cpuAfter[name as keyof typeof cpuAfter] - before)
        cpuPerWrite.generator = perWrite(result.cpuMs / 1000)
        const legs = yield* legsOf(prefix)
        const legOf = (f: (s: Sent, l: { written: number; claimed: number }) => number) =>
          ok.flatMap((s) => {
            const l = legs.get(s.user)
            return l === undefined ? [] : [f(s, l)]
          })
        const lastVisible = Math.max(...ok.map((s) => seen.get(s.user) ?? 0))
        const firstSent = Math.min(...ok.map((s) => s.sentAt))
        const outcome: Outcome = {
          target,
          achieved: ok.length / (Math.max(result.elapsedMs, lastVisible - firstSent) / 1000),
          ok: ok.length,
          failed: result.sent.length - ok.length,
          shed: result.shed,
          visible: visibility.length,
          http: ok.map((s) => s.responseMs),
          visibility,
          read: result.readVisible,
          api: legOf((s, l) => l.written - s.sentAt),
          pipeline: legOf((_, l) => l.claimed - l.written),
          memberTransactions: new Set([...legs.values()].map((l) => l.claimed)).size,
          lagP99: result.lagP99,
          lagMax: result.lagMax,
          cpuPerWrite,
        }
        const v = stats(visibility)
        const h = stats(outcome.http)
        console.log(
          `rate ${target}/s × ${secs}s: ${ok.length} accepted (${outcome.failed} failed, ${result.shed} shed), ${visibility.length} visible, ` +
            `end-to-end p50/p95/p99 ${v.p50.toFixed(0)}/${v.p95.toFixed(0)}/${v.p99.toFixed(0)} ms, ` +
            `via the read (${outcome.read.length} sampled) p50/p95 ${stats(outcome.read).p50.toFixed(0)}/${stats(outcome.read).p95.toFixed(0)} ms, ` +
            `HTTP p95 ${h.p95.toFixed(0)} ms, ${outcome.achieved.toFixed(0)} writes/s end to end, generator lag p99 ${result.lagP99.toFixed(0)} ms; ${legsText(outcome)}; CPU per write ${cpuText(outcome)}`,
        )
        return outcome
      })

    // Warm-up: connections, group assignment, JIT — and tables of some size. Nothing visible
    // means the pipeline is broken.
    const warm = yield* scenario(warmUp.rate, warmUp.seconds)
    if (warm.visible < warm.ok)
      return yield* Effect.dieMessage(`warm-up: ${warm.visible} of ${warm.ok} writes became visible`)
    // Statistics, as pgbench vacuums before it measures: the scratch database was created empty a
    // moment ago and autovacuum has not looked at it yet, so the plans cached for its statements
    // were made for empty tables, and stay until the first auto-analyze, up to a minute in. A
    // database that has been running has them. Analysed with a few dozen rows the tables look like
    // one page, for which a sequential scan is the cheaper plan: measured with a 40-write warm-up,
    // 10–20% of the key claims and completions then scanned all of idempotency_records (up to
    // 1.4 ms each, growing with the table) until autovacuum's analyze, well into the measurement.
    yield* sql`ANALYZE`
    // The sweep first: the librdkafka mock scans a partition's whole history on every fetch, so
    // after the fixed rate's minute of overload (30,000 events) each fetch costs more — measured,
    // the mock's CPU per write in a 400/s step tripled — and the search for the highest sustained
    // rate, the figure most sensitive to spare CPU, would measure the mock's history.
    const stepped: Array<Outcome> = []
    for (const r of sweep) stepped.push(yield* scenario(r, stepSeconds))
    const fixed = yield* scenario(rate, seconds)

    const rows: Array<BenchRow> = []
    const name = `POST /api/miners → portfolio recalculated, ${rate} writes/s target for ${seconds} s`
    const v = stats(fixed.visibility)
    const h = stats(fixed.http)
    rows.push(
      {
        system: "hashinsight",
        scenario: name,
        metric: "throughput",
        value: fixed.achieved,
        unit: "events/s",
      },
      { system: "hashinsight", scenario: name, metric: "p50", value: v.p50, unit: "ms" },
      { system: "hashinsight", scenario: name, metric: "p95", value: v.p95, unit: "ms" },
      { system: "hashinsight", scenario: name, metric: "p99", value: v.p99, unit: "ms" },
      { system: "hashinsight", scenario: `${name} (HTTP response)`, metric: "p95", value: h.p95, unit: "ms" },
      ...(["p50", "p95", "p99"] as const).map((metric) => ({
        system: "hashinsight",
        scenario: `${name} (sampled, seen through GET /api/portfolio)`,
        metric,
        value: stats(fixed.read)[metric],
        unit: "ms",
      })),
      ...Object.entries(fixed.cpuPerWrite).map(([process, ms]) => ({
        system: "hashinsight",
        scenario: `${name} (CPU per accepted write)`,
        metric: process,
        value: ms,
        unit: "ms",
      })),
    )
    // Sustained: every write accepted and visible, and end to end kept up with the offered rate.
    const sustained = stepped.filter(
      (o) => o.failed === 0 && o.shed === 0 && o.visible === o.ok && o.achieved >= 0.9 * o.target,
    )
    const fastest = (outcomes: ReadonlyArray<Outcome>) =>
      outcomes.reduce<Outcome | undefined>(
        (b, o) => (b === undefined || o.achieved > b.achieved ? o : b),
        undefined,
      )
    const steps = `steps ${sweep.join(", ")} writes/s × ${stepSeconds} s`
    rows.push(
      {
        system: "hashinsight",
        scenario: `highest sustained write rate (${steps})`,
        metric: "throughput",
        value: fastest(sustained)?.achieved ?? 0,
        unit: "events/s",
      },
      // The goal's own bound: sustained with the end-to-end p95 within it.
      {
        system: "hashinsight",
        scenario: `highest sustained write rate with end-to-end p95 ≤ ${goalP95Ms} ms (${steps})`,
        metric: "throughput",
        value: fastest(sustained.filter((o) => stats(o.visibility).p95 <= goalP95Ms))?.achieved ?? 0,
        unit: "events/s",
      },
    )
    const notes = [
      `sampled: up to ${maxWatched} writes at a time are watched by polling GET /api/portfolio/{user} every ${watchIntervalMs} ms (the API's cached read path) until it shows the holding — the acceptance's "visible in the portfolio read"; those polls are extra load on the API`,
      "CPU per accepted write: user + system time from /proc over the scenario (the load and the wait until every write was visible), per process; postgres = every backend of the cluster, kafka = the bench's own mock, redis = the embedded one (0 when external); on 2 cores, 1,000 writes/s leaves at most 2 ms in total",
      "latency = portfolios.computed_at (start of the member's unit transaction, which commits a chunk's recalculations together) − the moment the load generator sent the POST; it excludes that transaction's own run time (computed_at and the inbox's processed_at are both its now()); legs: api = sent → outbox created_at (API transaction start), pipeline = outbox created_at → inbox processed_at (WAL relay, Kafka, the member's fetch and queue); events per member transaction = those writes' events ÷ their distinct inbox processed_at; one new user per write, so each write is one MinerAdded event and one recalculation under that user's lock",
      `processes: API, WAL relay and one portfolio-recalc member as subprocesses (bun), load generator its own subprocess (bun fetch, open loop); PostgreSQL, Redis and the librdkafka mock Kafka on the same 2-core machine; intel and crm-sync groups not running; Kafka: ${kafkaNote}`,
      ...[fixed, ...stepped].map(
        (o) =>
          `target ${o.target}/s: ${o.ok} accepted, ${o.failed} failed, ${o.shed} shed at ${maxInFlight} in flight, ${o.visible} visible, ${o.achieved.toFixed(0)} writes/s end to end; HTTP p50/p95/p99 ${Object.values(
            stats(o.http),
          )
            .map((x) => x.toFixed(0))
            .join("/")} ms; end-to-end p50/p95/p99 ${Object.values(stats(o.visibility))
            .map((x) => x.toFixed(0))
            .join(
              "/",
            )} ms (${legsText(o)}); generator lag p99 ${o.lagP99.toFixed(1)} ms, max ${o.lagMax.toFixed(1)} ms; CPU per accepted write ${cpuText(o)}`,
      ),
    ]
    report("e2e", rows, notes)
  })

  await Effect.runPromise(program.pipe(Effect.scoped, Effect.provide(Platform.layerDb), Effect.orDie))
  if (profiled !== undefined) console.log(`CPU profile of the ${profiled} (Bun --cpu-prof): ${profileDir}`)
}

if (import.meta.main) {
  const [role, arg] = process.argv.slice(2)
  if (role === "load" && arg) {
    await generateLoad(JSON.parse(arg) as LoadPlan)
    process.exit(0)
  } else if (role === "member" && arg) {
    runMain(Layer.launch(memberLayer({ ...portfolioConsumer, group: arg })), Platform.layer)
  } else {
    console.error(
      "usage: bun bench/e2e.ts member <group> | load <plan-json>  (run the bench with `bun run bench e2e`)",
    )
    process.exit(2)
  }
}
