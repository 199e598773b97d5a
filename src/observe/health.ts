/**
 * `GET /api/health`: the engine's five checks and the application's own (handed in as
 * `HealthOptions.checks`), each with its own status and the figures it was judged by, run at once
 * with a time limit each (a hung dependency marks its own check, never the endpoint). Overall status
 * is the worst check's; only `unhealthy` (503) means this API cannot do its job — the database is
 * down. Everything else the outbox absorbs: with Redis, Kafka or a consumer group down, writes still
 * commit and their events wait, so those checks report `degraded` and the API keeps answering 200 (a
 * load balancer must not take every instance out because a consumer is down).
 *
 * | check | figures | degraded when |
 * |---|---|---|
 * | database | latencyMs, pool (connections, idle, waiting, max) | slower than 1 s (unhealthy: unreachable) |
 * | redis | latencyMs, connectedClients, usedMemoryBytes | unreachable, or slower than 1 s |
 * | outbox | unpublished (not yet known to be in Kafka), oldestSeconds; WAL: slot, streaming, lagBytes, lagSeconds | an event unpublished for over 60 s; WAL: no reader streams from the slot, or over 64 MiB behind |
 * | kafka_consumer | totalLag, level, per group: lag, lagSeconds, level, stalled, per partition, and the members' reports | Kafka unreachable, lag at `warning` (1,000) or `critical` (10,000), a stalled partition, a group without members (where the broker describes groups), a member waiting on a dependency or no longer reporting |
 * | dlq | waiting (per group too), lastHour, rate (24 h), newestFailedAt | more than 10 entries waiting for an operator |
 * | cache (`cacheCheck`, for an application that reads through the SWR cache) | hits, stale, misses, hitRatio, refreshes | Redis unreachable, or a hit ratio under 80% once 100 reads were made |
 *
 * The checks also set the gauges `/metrics` shows for them (observe/metrics.ts), and run every
 * 10 s on their own so those stay fresh for a scraper that never asks for health.
 *
 * Checks run as the connecting (operator) role: they read across tenants.
 */
import { SqlClient } from "@effect/sql"
import { Cause, Context, Duration, Effect, Layer, Metric, Option, Redacted, Schedule, Schema } from "effect"
import { cacheHits, cacheMisses, cacheRefreshes, cacheStale } from "../engine/cache/metrics.ts"
import { messageOf } from "../engine/consumer/classify.ts"
import { dlqRate, dlqWindow } from "../engine/consumer/dlq.ts"
import { MemberReports, type SeenReport, staleAfterMs } from "../engine/consumer/member-reports.ts"
import { defaultSlotFor } from "../engine/relay/config.ts"
import { outboxBacklog, slotLag } from "../engine/relay/lag.ts"
import { AppConfig } from "../platform/config.ts"
import { poolConnections, poolIdle, poolMax, poolWaiting } from "../platform/metrics.ts"
import { Redis } from "../platform/redis.ts"
import { LagMonitor, type WatchedGroup } from "./lag.ts"
import * as M from "./metrics.ts"

export type { WatchedGroup } from "./lag.ts"

export const HealthStatus = Schema.Literal("healthy", "degraded", "unhealthy")
export type HealthStatus = typeof HealthStatus.Type

/** A check's status, why (when not healthy) and its figures. */
export const CheckResult = Schema.Struct(
  { status: HealthStatus, detail: Schema.optional(Schema.String) },
  Schema.Record({ key: Schema.String, value: Schema.Unknown }),
)
export type CheckResult = typeof CheckResult.Type

/** The engine's checks, first in every report. */
export const engineCheckNames = ["database", "redis", "outbox", "kafka_consumer", "dlq"] as const

/** The report of the engine's checks and then the application's `names`, as the API declares it. */
export const healthReport = (names: ReadonlyArray<string>) =>
  Schema.Struct({
    status: HealthStatus,
    checks: Schema.Struct(
      Object.fromEntries([...engineCheckNames, ...names].map((n) => [n, CheckResult])) as Record<
        string,
        typeof CheckResult
      >,
    ),
  }).annotations({ identifier: "HealthReport" })

export interface HealthReport {
  readonly status: HealthStatus
  readonly checks: Readonly<Record<string, CheckResult>>
}

/** A check of the application's: the figures it judges, and why it is not healthy when it is not. */
export type Check = Effect.Effect<CheckResult, unknown, SqlClient.SqlClient | Redis>

const rank: Record<HealthStatus, number> = { healthy: 0, degraded: 1, unhealthy: 2 }
export const worst = (statuses: ReadonlyArray<HealthStatus>): HealthStatus =>
  statuses.reduce<HealthStatus>((w, s) => (rank[s] > rank[w] ? s : w), "healthy")

/** A check's result: healthy with its figures, or degraded with the reason when there is one. */
export const ok = (figures: Record<string, unknown>, degradedBecause?: string): CheckResult =>
  degradedBecause === undefined
    ? { status: "healthy", ...figures }
    : { status: "degraded", detail: degradedBecause, ...figures }

const checkTimeout = Duration.seconds(3)

/** Runs a check within its time limit; a failure or timeout is reported with `onFailure`. */
const guarded = <E, R>(
  check: Effect.Effect<CheckResult, E, R>,
  onFailure: HealthStatus,
): Effect.Effect<CheckResult, never, R> =>
  check.pipe(
    Effect.timeoutFail({ duration: checkTimeout, onTimeout: () => new Error("timed out after 3 s") }),
    Effect.catchAllCause((cause) =>
      Effect.succeed<CheckResult>({ status: onFailure, detail: messageOf(Cause.squash(cause)) }),
    ),
  )

const timed = <A, E, R>(self: Effect.Effect<A, E, R>) =>
  Effect.map(Effect.timed(self), ([d]) => Math.round(Duration.toMillis(d) * 100) / 100)

const slowMs = 1000

export interface HealthOptions {
  /**
   * The WAL relay's replication slot (default: the relay's default for the configured database);
   * while it does not exist, the polling relay's backlog is checked instead.
   */
  readonly slot?: string
  /** The groups whose lag (from `LagMonitor`) and member reports `kafka_consumer` shows. */
  readonly groups: ReadonlyArray<WatchedGroup>
  /** The application's checks by name, reported after the engine's; each degrades the report at worst. */
  readonly checks: Readonly<Record<string, Check>>
}

const walLagLimitBytes = 64 * 1024 * 1024
const unpublishedLimitSeconds = 60
export const dlqWaitingLimit = 10
const dlqRateWindowHours = 24

const gaugeValue = (gauge: Metric.Metric.Gauge<number>) => Effect.map(Metric.value(gauge), (s) => s.value)

const databaseCheck = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  const latencyMs = yield* timed(sql`SELECT 1`)
  const [connections, idle, waiting, max] = yield* Effect.all(
    [poolConnections, poolIdle, poolWaiting, poolMax].map(gaugeValue),
  )
  return ok(
    { latencyMs, pool: { connections, idle, waiting, max } },
    latencyMs > slowMs ? `answered in ${latencyMs} ms` : undefined,
  )
})

/** A figure from `INFO`'s `name:value` lines. */
const infoField = (info: string, name: string) => {
  const match = info.match(new RegExp(`^${name}:(\\d+)`, "m"))
  return match ? Number(match[1]) : null
}

const redisCheck = Effect.gen(function* () {
  const redis = yield* Redis
  const latencyMs = yield* timed(redis.probe)
  const info = yield* redis.use("info", (c) =>
    c.info("clients").then(async (a) => a + (await c.info("memory"))),
  )
  const connectedClients = infoField(info, "connected_clients")
  const usedMemoryBytes = infoField(info, "used_memory")
  if (connectedClients !== null) yield* Metric.set(M.redisClients, connectedClients)
  if (usedMemoryBytes !== null) yield* Metric.set(M.redisMemory, usedMemoryBytes)
  return ok(
    { latencyMs, connectedClients, usedMemoryBytes },
    latencyMs > slowMs ? `answered in ${latencyMs} ms` : undefined,
  )
})

/**
 * In both relay modes the backlog of events not yet known to be in Kafka (the WAL relay moves the
 * delivered watermark, polling marks rows); in WAL mode also the slot. A slot that is not the
 * relay's (Debezium's) moves no watermark, so only the slot judges that outbox.
 */
const outboxCheck = (relaySlot: string) =>
  Effect.gen(function* () {
    const lag = yield* slotLag(relaySlot)
    const own = Option.isNone(lag) || lag.value.slot === relaySlot
    const backlog = own ? yield* outboxBacklog : undefined
    const why: Array<string> = []
    let figures: Record<string, unknown> = { mode: Option.isSome(lag) ? "wal" : "poll" }
    if (backlog) {
      figures = { ...figures, unpublished: backlog.unpublished, oldestSeconds: backlog.oldestSeconds }
      yield* Metric.set(M.outboxUnpublished, backlog.unpublished)
      yield* Metric.set(M.outboxOldestSeconds, backlog.oldestSeconds)
      if (backlog.oldestSeconds > unpublishedLimitSeconds)
        why.push(`an event has waited ${Math.round(backlog.oldestSeconds)} s to be published`)
    }
    if (Option.isSome(lag)) {
      const { slot, bytes, active, seconds } = lag.value
      figures = { ...figures, slot, streaming: active, lagBytes: bytes, lagSeconds: seconds }
      yield* Metric.set(M.slotLagBytes, bytes)
      yield* Metric.set(M.slotLagSeconds, seconds)
      yield* Metric.set(M.slotActive, active ? 1 : 0)
      if (!active) why.push(`no relay is streaming from slot ${slot}`)
      else if (bytes > walLagLimitBytes) why.push(`the relay is ${bytes} bytes of WAL behind`)
    }
    return ok(figures, why.length > 0 ? why.join("; ") : undefined)
  })

/** A member's report as health shows it. */
const shown = (r: SeenReport) => ({
  member: r.member,
  state: r.state,
  leader: r.leader,
  waitingOn: r.waiting.map((w) => ({
    dependency: w.dependency,
    since: new Date(w.since).toISOString(),
    error: w.error,
  })),
  partitions: r.partitions,
  reportedSecondsAgo: Math.round(r.ageMs / 100) / 10,
  stale: r.ageMs > staleAfterMs,
})

/**
 * Lag from the lag monitor's latest sample and the members' own reports (from Redis or the
 * database, whichever answers), so what the members wait on shows while Kafka, or one of the
 * stores, is down.
 */
const kafkaConsumerCheck = (
  monitor: LagMonitor["Type"],
  groups: ReadonlyArray<WatchedGroup>,
  reports: MemberReports["Type"],
) =>
  Effect.gen(function* () {
    const [reading, seen] = yield* Effect.all(
      [monitor.latest, Effect.forEach(groups, (g) => reports.read(g.group), { concurrency: "unbounded" })],
      { concurrency: "unbounded" },
    )
    const why: Array<string> = []
    const sample = Option.getOrUndefined(reading.sample)
    if (Option.isSome(reading.error))
      why.push(
        `Kafka: ${reading.error.value.message}${sample ? ` (lag as sampled ${Math.round((Date.now() - sample.at) / 1000)} s ago)` : ""}`,
      )
    else if (!sample) why.push("Kafka: no lag sample yet")
    const result: Record<string, Record<string, unknown>> = {}
    for (const [i, { group }] of groups.entries()) {
      const members = seen[i]!
      const stale = members.filter((m) => m.ageMs > staleAfterMs).length
      yield* Metric.set(Metric.tagged(M.membersReporting, "group", group), members.length - stale)
      yield* Metric.set(Metric.tagged(M.membersStale, "group", group), stale)
      for (const m of members) {
        for (const w of m.waiting)
          why.push(
            `${m.member} of ${group} waits on ${w.dependency} since ${new Date(w.since).toISOString()}`,
          )
        if (m.ageMs > staleAfterMs)
          why.push(`${m.member} of ${group} has not reported for ${Math.round(m.ageMs / 1000)} s`)
      }
      const lag = sample?.groups.find((g) => g.group === group)
      if (lag) {
        if (lag.members === 0) why.push(`no member of ${group} is running`)
        if (lag.level !== "ok") why.push(`${group} is ${lag.lag} records behind (${lag.level})`)
        for (const p of lag.partitions.filter((p) => p.stalled))
          why.push(`${group} is stalled on ${p.topic}/${p.partition} (${p.lag} behind, no commit)`)
      }
      const { group: _, ...figures } = lag ?? { group }
      result[group] = { ...figures, reports: members.map(shown) }
    }
    return ok(
      {
        totalLag: sample?.total ?? null,
        level: sample?.level ?? null,
        sampledAt: sample ? new Date(sample.at).toISOString() : null,
        groups: result,
      },
      why.length > 0 ? why.join("; ") : undefined,
    )
  })

const dlqCheck = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  const [totals, byGroup, window] = yield* Effect.all(
    [
      sql<{ last_hour: number; newest: Date | null }>`
        SELECT count(*) FILTER (WHERE failed_at > now() - interval '1 hour')::int AS last_hour,
               max(failed_at) AS newest
        FROM event_dlq`,
      sql<{ group: string; waiting: number }>`
        SELECT consumer_group AS group, count(*)::int AS waiting FROM event_dlq
        WHERE replay_status IN ('pending', 'failed') GROUP BY 1 ORDER BY 1`,
      dlqWindow(dlqRateWindowHours),
    ],
    { concurrency: "unbounded" },
  )
  const waiting = byGroup.reduce((n, g) => n + g.waiting, 0)
  const counted = new Set([...byGroup.map((g) => g.group), ...window.map((w) => w.consumerGroup)])
  for (const group of counted) {
    yield* Metric.set(
      Metric.tagged(M.dlqWaiting, "group", group),
      byGroup.find((g) => g.group === group)?.waiting ?? 0,
    )
    const w = window.find((x) => x.consumerGroup === group)
    yield* Metric.set(Metric.tagged(M.dlqRatio, "group", group), (w && dlqRate(w.dlq, w.processed)) ?? 0)
  }
  const dlq = window.reduce((n, w) => n + w.dlq, 0)
  const processed = window.reduce((n, w) => n + w.processed, 0)
  return ok(
    {
      waiting,
      waitingByGroup: Object.fromEntries(byGroup.map((g) => [g.group, g.waiting])),
      lastHour: totals[0]?.last_hour ?? 0,
      rate: dlqRate(dlq, processed),
      rateWindowHours: dlqRateWindowHours,
      newestFailedAt: totals[0]?.newest ?? null,
    },
    waiting > dlqWaitingLimit
      ? `${waiting} dead-lettered records wait for an operator, more than ${dlqWaitingLimit} (bun run dlq stats)`
      : undefined,
  )
})

const counterValue = (counter: Metric.Metric.Counter<number>) =>
  Effect.map(Metric.value(counter), (s) => Number(s.count))

/** The hit ratio the SWR cache should keep (stale hits count as hits: no database read). */
export const cacheHitRatioTarget = 0.8
/** Reads before the ratio is judged: a process that just started has seen only its first misses. */
export const cacheMinReads = 100

/** The SWR cache's hit figures; degraded while Redis is unreachable or the hit ratio is below 80%. */
export const cacheCheck: Check = Effect.gen(function* () {
  const redis = yield* Redis
  const [hits, stale, misses, refreshes] = yield* Effect.all([
    counterValue(cacheHits),
    counterValue(cacheStale),
    counterValue(cacheMisses),
    counterValue(cacheRefreshes),
  ])
  const reads = hits + stale + misses
  const hitRatio = reads === 0 ? null : (hits + stale) / reads
  const figures = { hits, stale, misses, refreshes, hitRatio }
  const reachable = yield* Effect.either(redis.probe)
  if (reachable._tag === "Left") return ok(figures, "Redis is unreachable: reads go to the database")
  return ok(
    figures,
    reads >= cacheMinReads && hitRatio !== null && hitRatio < cacheHitRatioTarget
      ? `hit ratio ${(hitRatio * 100).toFixed(1)}% over ${reads} reads, under ${cacheHitRatioTarget * 100}%`
      : undefined,
  )
})

/** How often the checks run on their own, keeping their gauges fresh. */
const refreshEvery = Duration.seconds(10)

export class Health extends Context.Tag("hashinsight/observe/Health")<
  Health,
  { readonly report: Effect.Effect<HealthReport> }
>() {
  static readonly layer = (options: HealthOptions) =>
    Layer.scoped(
      Health,
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const redis = yield* Redis
        const config = yield* AppConfig
        const monitor = yield* LagMonitor
        const reports = yield* MemberReports.make
        const checks: Record<string, Effect.Effect<CheckResult, never, SqlClient.SqlClient | Redis>> = {
          database: guarded(databaseCheck, "unhealthy"),
          redis: guarded(redisCheck, "degraded"),
          outbox: guarded(
            outboxCheck(options.slot ?? defaultSlotFor(Redacted.value(config.databaseUrl))),
            "degraded",
          ),
          kafka_consumer: guarded(kafkaConsumerCheck(monitor, options.groups, reports), "degraded"),
          dlq: guarded(dlqCheck, "degraded"),
          ...Object.fromEntries(
            Object.entries(options.checks).map(([name, check]) => [name, guarded(check, "degraded")]),
          ),
        }
        const report = Effect.all(checks, { concurrency: "unbounded" }).pipe(
          Effect.map(
            (results): HealthReport => ({
              status: worst(Object.values(results).map((r) => r.status)),
              checks: results,
            }),
          ),
          Effect.provideService(SqlClient.SqlClient, sql),
          Effect.provideService(Redis, redis),
          Effect.withSpan("Health.report"),
        )
        yield* Effect.forkScoped(Effect.repeat(report, Schedule.spaced(refreshEvery)))
        return Health.of({ report })
      }),
    )
}
