/**
 * Members ride out dependency outages: the embedded PostgreSQL stopped for 30 s, Redis for 15 s,
 * while events keep arriving. Nothing is dead-lettered, every event's effect happens once and on its
 * first attempt (the outage spent no event's retry budget), and meanwhile the member's metrics and
 * the health report (read from the store that is still up, as the API would) say what it waits on.
 *
 * These stop servers the whole suite shares; see test/support/outage.ts for why that is safe here.
 */
import { describe, expect } from "bun:test"
import { SqlClient } from "@effect/sql"
import type { Subprocess } from "bun"
import { Duration, Effect, Fiber, Layer, Metric, Ref, Schedule } from "effect"
import { defineConsumer, on } from "../../src/engine/consumer/definition.ts"
import { MemberReports } from "../../src/engine/consumer/member-reports.ts"
import * as M from "../../src/engine/consumer/metrics.ts"
import { outageLimit } from "../../src/engine/consumer/outage.ts"
import { decodeRetryPolicy } from "../../src/engine/consumer/retry.ts"
import { Health, type HealthReport } from "../../src/observe/health.ts"
import { LagMonitor } from "../../src/observe/lag.ts"
import { Kafka } from "../../src/platform/kafka.ts"
import { freePort } from "../../src/platform/stack/index.ts"
import { migratedScratch } from "../ops/dlq-fixtures.ts"
import {
  dlqRows,
  effectCounts,
  ensureEffectsTable,
  eventually,
  produce,
  spawnMember,
  startMember,
  workRecord,
  workTopic,
  writeEffect,
} from "../support/consumer-fixtures.ts"
import { clientFor } from "../support/database.ts"
import { effectTest } from "../support/effect.ts"
import { uniqueId } from "../support/ids.ts"
import { isEmbedded, outage, sampleValue, scrape } from "../support/outage.ts"

interface MemberReportShown {
  readonly member: string
  readonly state: string
  readonly waitingOn: ReadonlyArray<{
    readonly dependency: string
    readonly since: string
    readonly error: string
  }>
  readonly stale: boolean
}

/** Events on every partition of `topic` every 100 ms, with distinct aggregate keys, until interrupted. */
const produceSteadily = (topic: string, ids: Array<string>) =>
  Effect.gen(function* () {
    const kafka = yield* Kafka
    const producer = yield* kafka.producer()
    for (let seq = 0; ; seq++) {
      const messages = [0, 1, 2, 3].map((partition) => ({
        ...workRecord({ label: `${partition}-${seq}` }, { key: `k${seq % 8}` }),
        partition,
      }))
      ids.push(...messages.map((m) => m.id))
      yield* Effect.promise(() => producer.send({ topic, messages }))
      yield* Effect.sleep(Duration.millis(100))
    }
  }).pipe(Effect.scoped)

/** The attempt number each effect of `group` was written on (consumer-process.ts labels). */
const attemptsOf = (group: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.map(
      sql<{ attempt: number; n: number }>`
        SELECT split_part(label, '@', 3)::int AS attempt, count(*)::int AS n
        FROM consumer_test_effects WHERE consumer_group = ${group} GROUP BY 1`,
      (rows) => Object.fromEntries(rows.map((r) => [r.attempt, r.n])),
    ),
  )

const memberReports = (report: HealthReport, group: string) => {
  // No groups when the check failed (timed out).
  const groups = report.checks.kafka_consumer?.groups as
    | Record<string, { reports: Array<MemberReportShown> }>
    | undefined
  return groups?.[group]?.reports ?? []
}

/**
 * One member (its own process, metrics on a port) of a fresh group under a steady stream of events;
 * `dependency` goes down for `downFor` while events flow, then comes back.
 */
const rideOut = (dependency: "postgres" | "redis", downFor: Duration.Duration, locked: boolean) =>
  Effect.gen(function* () {
    yield* ensureEffectsTable
    const topic = workTopic()
    const group = uniqueId("outage-group")
    const metricsPort = yield* Effect.promise(() => freePort())
    // As many groups as the platform's, each read from the stores within the check's time limit.
    const watched = [group, `${group}-b`, `${group}-c`].map((g) => ({ group: g, topics: [topic.name] }))
    const health = yield* Effect.map(
      Layer.build(
        Layer.provide(Health.layer({ groups: watched, checks: {} }), LagMonitor.layer({ groups: watched })),
      ),
      (context) => Layer.succeedContext(context),
    )
    const report = Effect.flatMap(Health, (h) => h.report).pipe(Effect.provide(health))
    const name = dependency === "postgres" ? "database" : "redis"
    const metric = (text: string | undefined, metricName: string) =>
      text === undefined ? undefined : sampleValue(text, metricName, { group, dependency: name })

    const ids: Array<string> = []
    const producer = yield* Effect.forkScoped(produceSteadily(topic.name, ids))
    const member: Subprocess = yield* spawnMember(topic.aggregatetype, group, { locked, metricsPort })
    yield* eventually(
      Effect.map(effectCounts(group), (counts) => counts.size >= 40),
      Duration.seconds(60),
    )
    const before = yield* scrape(metricsPort)
    expect(metric(before, "consumer_dependency_unavailable")).toBe(0)

    // While it is down: the member says it waits on it, in its metrics and in the health report.
    const waitingSeen = yield* Ref.make<
      { readonly member: MemberReportShown; readonly check: { status: string; detail?: string } } | undefined
    >(undefined)
    const { downMs } = yield* outage(
      dependency,
      downFor,
      eventually(
        Effect.gen(function* () {
          const gauge = metric(yield* scrape(metricsPort), "consumer_dependency_unavailable")
          const now = yield* report
          const waiting = memberReports(now, group).find((r) =>
            r.waitingOn.some((w) => w.dependency === name),
          )
          if (waiting) yield* Ref.set(waitingSeen, { member: waiting, check: now.checks.kafka_consumer! })
          return gauge === 1 && waiting !== undefined
        }),
        Duration.millis(Duration.toMillis(downFor) - 2_000),
      ),
    )
    const waiting = yield* Ref.get(waitingSeen)
    expect(waiting?.member).toMatchObject({ state: "waiting", stale: false })
    expect(waiting?.check.status).toBe("degraded")
    expect(waiting?.check.detail).toContain(`of ${group} waits on ${name} since`)

    // Back: events keep coming a little longer, then every one is processed once.
    yield* Effect.sleep(Duration.seconds(2))
    yield* Fiber.interrupt(producer)
    yield* eventually(
      Effect.map(effectCounts(group), (counts) => counts.size === ids.length),
      Duration.seconds(60),
    )
    const counts = yield* effectCounts(group)
    expect(ids.filter((id) => counts.get(id) !== 1)).toEqual([])
    expect(yield* dlqRows(group)).toEqual([])
    expect(yield* attemptsOf(group)).toEqual({ 1: ids.length })

    const after = yield* scrape(metricsPort)
    expect(metric(after, "consumer_dependency_unavailable")).toBe(0)
    expect(metric(after, "consumer_outage_retries_total")).toBeGreaterThan(0)
    // Held, not rebalanced out: one join in all.
    expect(sampleValue(after!, "consumer_group_joins_total", { group })).toBe(1)
    expect(sampleValue(after!, "consumer_dlq_total", { group })).toBe(0)
    yield* eventually(
      Effect.map(report, (r) => memberReports(r, group).every((m) => m.state === "running")),
      Duration.seconds(10),
    )

    // And it still drains on SIGTERM.
    member.kill("SIGTERM")
    expect(yield* Effect.promise(() => member.exited)).toBe(0)
    return { downMs, events: ids.length }
  })

describe("dependency outages", () => {
  effectTest.skipIf(!isEmbedded("postgres"))(
    "PostgreSQL stopped for 30 s while events flow: held, not dead-lettered; every event once on its first attempt; the member shows as waiting",
    () =>
      Effect.gen(function* () {
        const { downMs, events } = yield* rideOut("postgres", Duration.seconds(30), false)
        expect(downMs).toBeGreaterThanOrEqual(30_000)
        console.log(`PostgreSQL down ${downMs} ms; ${events} events, none dead-lettered`)
      }),
    { timeout: 180_000 },
  )

  effectTest.skipIf(!isEmbedded("redis"))(
    "Redis stopped for 15 s under a group with lock keys: held, not dead-lettered; every event once on its first attempt; the member shows as waiting",
    () =>
      Effect.gen(function* () {
        const { downMs, events } = yield* rideOut("redis", Duration.seconds(15), true)
        expect(downMs).toBeGreaterThanOrEqual(15_000)
        console.log(`Redis down ${downMs} ms; ${events} events, none dead-lettered`)
      }),
    { timeout: 180_000 },
  )
})

/**
 * A migrated database of the test's own whose connections the test can refuse and allow again
 * (`ALTER DATABASE … ALLOW_CONNECTIONS`, its backends terminated): an outage of that database alone,
 * for members in this process that use it.
 */
const scratchOutage = Effect.gen(function* () {
  const db = yield* migratedScratch
  const client = yield* Layer.build(clientFor(db.url))
  const inScratch = <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.provide(self, client)
  yield* inScratch(ensureEffectsTable)
  const operator = yield* SqlClient.SqlClient
  // On the operator's own connections also when called from a handler, inside its transaction.
  const asOperator = <A, E>(statement: Effect.Effect<A, E>) =>
    Effect.promise(() => Effect.runPromise(Effect.ignore(statement)))
  const refuse = asOperator(
    Effect.zipRight(
      operator.unsafe(`ALTER DATABASE ${db.name} WITH ALLOW_CONNECTIONS false`),
      operator`SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity WHERE datname = ${db.name}`,
    ),
  )
  const allow = asOperator(operator.unsafe(`ALTER DATABASE ${db.name} WITH ALLOW_CONNECTIONS true`))
  // Waits until the backend is gone, so the caller's next statement is the one that fails.
  const terminate = (pid: number) => asOperator(operator`SELECT pg_terminate_backend(${pid}, 5000)`)
  return { inScratch, refuse, allow, terminate }
})

const gaugeOf = (group: string, dependency: string) =>
  Effect.map(
    Metric.value(
      M.dependencyUnavailable.pipe(Metric.tagged("group", group), Metric.tagged("dependency", dependency)),
    ),
    (s) => s.value,
  )

const policy = decodeRetryPolicy({ maxAttempts: 3, baseDelayMs: 50, factor: 2, capMs: 200, jitter: 0 })

describe("holding a partition", () => {
  effectTest(
    "while the database refuses connections, a second member joining rebalances the group, and a member stopped while holding drains at once; back, every event once, none dead-lettered",
    () =>
      Effect.gen(function* () {
        const { inScratch, refuse, allow } = yield* scratchOutage
        const topic = workTopic()
        const group = uniqueId("hold-group")
        const consumer = defineConsumer({
          name: "hold-test",
          group,
          retry: policy,
          subscriptions: [
            on(topic, {
              Work: (p, meta) =>
                writeEffect(group, meta.eventId, meta.tenantId, `${p.label}@0@${meta.attempt}`),
            }),
          ],
        })
        const records = (n: number, label: string) =>
          Array.from({ length: n }, (_, i) => workRecord({ label: `${label}-${i}` }, { key: `k${i % 8}` }))
        const first = records(20, "before")
        yield* produce(topic.name, first)
        const a = yield* inScratch(startMember(consumer))
        yield* inScratch(eventually(Effect.map(effectCounts(group), (c) => c.size === first.length)))

        yield* refuse
        const during = records(40, "during")
        yield* produce(topic.name, during)
        yield* eventually(Effect.map(gaugeOf(group, "database"), (v) => v === 1))

        // A second member joins while the first holds: the group rebalances, each reports its share.
        const b = yield* inScratch(startMember(consumer))
        const reports = yield* inScratch(MemberReports.make)
        const shares = yield* reports.read(group).pipe(
          Effect.filterOrFail(
            (seen) =>
              seen.length === 2 && seen.every((r) => r.state === "waiting" && r.partitions.length > 0),
            () => "not yet" as const,
          ),
          Effect.retry({ schedule: Schedule.spaced(Duration.millis(200)) }),
          Effect.timeout(Duration.seconds(30)),
        )
        expect(shares.flatMap((r) => r.partitions).sort()).toEqual(
          [0, 1, 2, 3].map((p) => `${topic.name}/${p}`),
        )

        // Stopping a member that holds: it gives its units up and is gone in moments, not after the outage.
        const stopping = Date.now()
        yield* Fiber.interrupt(a)
        expect(Date.now() - stopping).toBeLessThan(3_000)

        yield* allow
        const all = [...first, ...during]
        yield* inScratch(
          eventually(
            Effect.map(effectCounts(group), (c) => c.size === all.length),
            Duration.seconds(60),
          ),
        )
        const counts = yield* inScratch(effectCounts(group))
        expect(all.filter((r) => counts.get(r.id) !== 1)).toEqual([])
        expect(yield* inScratch(dlqRows(group))).toEqual([])
        expect(yield* inScratch(attemptsOf(group))).toEqual({ 1: all.length })
        expect(yield* gaugeOf(group, "database")).toBe(0)
        yield* Fiber.interrupt(b)
      }),
    { timeout: 120_000 },
  )

  effectTest(
    "an event whose own statement gets its connection killed counts attempts and is dead-lettered; one that takes the database down on every attempt is held through the outage limit, then dead-lettered; the rest of the partition goes on",
    () =>
      Effect.gen(function* () {
        const { inScratch, refuse, allow, terminate } = yield* scratchOutage
        const topic = workTopic()
        const group = uniqueId("own-failure-group")
        const calls = new Map<string, number>()
        const consumer = defineConsumer({
          name: "own-failure-test",
          group,
          retry: policy,
          subscriptions: [
            on(topic, {
              Work: (p, meta) =>
                Effect.gen(function* () {
                  calls.set(p.label, (calls.get(p.label) ?? 0) + 1)
                  const sql = yield* SqlClient.SqlClient
                  if (p.label === "kills-its-connection") {
                    const [row] = yield* sql<{ pid: number }>`SELECT pg_backend_pid() AS pid`
                    yield* terminate(row!.pid)
                  }
                  if (p.label === "takes-the-database-down") {
                    yield* refuse
                    yield* Effect.forkDaemon(Effect.delay(allow, Duration.millis(500)))
                  }
                  yield* writeEffect(group, meta.eventId, meta.tenantId, `${p.label}@0@${meta.attempt}`)
                }),
            }),
          ],
        })
        const key = { key: "one-partition" }
        const records = ["ok-1", "kills-its-connection", "ok-2", "takes-the-database-down", "ok-3"].map(
          (label) => workRecord({ label }, key),
        )
        yield* produce(topic.name, records)
        yield* inScratch(startMember(consumer))
        yield* inScratch(
          eventually(
            Effect.map(dlqRows(group), (rows) => rows.length === 2),
            Duration.seconds(60),
          ),
        )
        yield* inScratch(eventually(Effect.map(effectCounts(group), (c) => c.size === 3)))

        const dlq = yield* inScratch(dlqRows(group))
        const byLabel = new Map(dlq.map((d) => [JSON.parse(d.value!).label as string, d]))
        expect(byLabel.get("kills-its-connection")).toMatchObject({ error_tag: "SqlError", attempts: 3 })
        expect(byLabel.get("takes-the-database-down")).toMatchObject({ error_tag: "SqlError", attempts: 3 })
        // The database answered at once after the killed connection: no outage, three attempts.
        expect(calls.get("kills-its-connection")).toBe(3)
        // Real outages, each waited out: free up to the limit, then counted.
        expect(calls.get("takes-the-database-down")).toBe(outageLimit + 3)
        const counts = yield* inScratch(effectCounts(group))
        for (const label of ["ok-1", "ok-2", "ok-3"])
          expect(counts.get(records.find((r) => JSON.parse(r.value!).label === label)!.id)).toBe(1)
      }),
    { timeout: 120_000 },
  )
})
