/**
 * `GET /api/health`: the engine's five checks and the application's own (handed in as
 * `HealthOptions.checks`), each with its own status and the figures it was judged by, run at once
 * with a time limit each. Overall status is the worst check's; only `unhealthy` (503)
 * means this API cannot do its job — the database is down. Everything else the outbox absorbs:
 * with Redis, Kafka or a consumer group down, writes still commit and their events wait, so those
 * checks report `degraded` and the API keeps answering 200 (a load balancer must not take every
 * instance out because a consumer is down).
 *
 * | check | figures | degraded when |
 * |---|---|---|
 * | database | latencyMs | slower than 1 s (unhealthy: unreachable) |
 * | redis | latencyMs | unreachable, or slower than 1 s |
 * | outbox | WAL: slot (the relay's, else the database's other pgoutput slot: Debezium's), streaming, lagBytes; poll: unpublished (neither marked published nor below the delivered watermark), oldestSeconds | no reader streams from the slot, WAL lag over 64 MiB, or an event unpublished for over 60 s |
 * | kafka_consumer | per group: state, members, lag, reports (what each member last said: running or waiting on a dependency since when, its partitions, how long ago) | Kafka unreachable, a group without members (where the broker describes groups), a group over 10,000 events behind, a member waiting on a dependency, or a member that stopped reporting |
 * | dlq | waiting, lastHour, newestFailedAt | records waiting for an operator (pending or failed replay) |
 * | cache (`cacheCheck`, for an application that reads through the SWR cache) | hits, stale, misses, hitRatio, refreshes | Redis unreachable (reads go to the database) |
 *
 * Checks run as the connecting (operator) role: they read across tenants.
 */
import { SqlClient } from "@effect/sql"
import { Cause, Context, Duration, Effect, Layer, Metric, Option, Redacted, Schema } from "effect"
import { cacheHits, cacheMisses, cacheRefreshes, cacheStale } from "../engine/cache/metrics.ts"
import { messageOf } from "../engine/consumer/classify.ts"
import { MemberReports, type SeenReport, staleAfterMs } from "../engine/consumer/member-reports.ts"
import { defaultSlotFor } from "../engine/relay/config.ts"
import { outboxBacklog, slotLag } from "../engine/relay/lag.ts"
import { AppConfig } from "../platform/config.ts"
import { Kafka, type KafkaAdmin } from "../platform/kafka.ts"
import { Redis } from "../platform/redis.ts"

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

/** A consumer group the `kafka_consumer` check follows, with the topics it reads. */
export interface WatchedGroup {
  readonly group: string
  readonly topics: ReadonlyArray<string>
}

export interface HealthOptions {
  /**
   * The WAL relay's replication slot (default: the relay's default for the configured database);
   * while it does not exist, the polling relay's backlog is checked instead.
   */
  readonly slot?: string
  readonly groups: ReadonlyArray<WatchedGroup>
  /** The application's checks by name, reported after the engine's; each degrades the report at worst. */
  readonly checks: Readonly<Record<string, Check>>
}

const lagLimit = 10_000
const walLagLimitBytes = 64 * 1024 * 1024
const unpublishedLimitSeconds = 60

const outboxCheck = (relaySlot: string) =>
  Effect.gen(function* () {
    const lag = yield* slotLag(relaySlot)
    if (Option.isSome(lag)) {
      const { slot, bytes, active } = lag.value
      const figures = { mode: "wal", slot, streaming: active, lagBytes: bytes }
      if (!active) return ok(figures, `no relay is streaming from slot ${slot}`)
      return ok(figures, bytes > walLagLimitBytes ? `the relay is ${bytes} bytes of WAL behind` : undefined)
    }
    const backlog = yield* outboxBacklog
    return ok(
      { mode: "poll", unpublished: backlog.unpublished, oldestSeconds: backlog.oldestSeconds },
      backlog.oldestSeconds > unpublishedLimitSeconds
        ? `an event has waited ${Math.round(backlog.oldestSeconds)} s to be published`
        : undefined,
    )
  })

interface GroupFigures {
  readonly state: string
  /** null when the broker cannot describe groups. */
  readonly members: number | null
  readonly lag: number
}

/** Committed offsets against the end of every partition, and who is in the group. */
const groupsOf = async (admin: KafkaAdmin, groups: ReadonlyArray<WatchedGroup>) => {
  const existing = new Set(await admin.listTopics())
  const ends = new Map<string, Map<number, { low: number; high: number }>>()
  for (const topic of new Set(groups.flatMap((g) => g.topics))) {
    if (!existing.has(topic)) continue
    const offsets = await admin.fetchTopicOffsets(topic)
    ends.set(topic, new Map(offsets.map((o) => [o.partition, { low: Number(o.low), high: Number(o.high) }])))
  }
  // Membership needs DescribeGroups, which not every broker speaks (the librdkafka mock does not):
  // without it the members are unknown (null) and only the lag is judged.
  const described = await admin.describeGroups(groups.map((g) => g.group)).catch(() => undefined)
  const result: Record<string, GroupFigures> = {}
  for (const g of groups) {
    const topics = g.topics.filter((t) => ends.has(t))
    let lag = 0
    if (topics.length > 0) {
      for (const { topic, partitions } of await admin.fetchOffsets({ groupId: g.group, topics })) {
        for (const p of partitions) {
          const end = ends.get(topic)?.get(p.partition)
          if (end === undefined) continue
          const committed = Number(p.offset)
          lag += Math.max(0, end.high - (committed >= 0 ? committed : end.low))
        }
      }
    }
    const d = described?.groups.find((x) => x.groupId === g.group)
    result[g.group] = {
      state: d?.state ?? "unknown",
      members: d === undefined ? null : d.members.length,
      lag,
    }
  }
  return result
}

/** Through an admin that fails fast: a health check must not sit in kafkajs's retries. */
const groupFigures = (kafka: Kafka["Type"], groups: ReadonlyArray<WatchedGroup>) =>
  Effect.scoped(
    Effect.flatMap(kafka.quickAdmin, (admin) =>
      Effect.tryPromise({ try: () => groupsOf(admin, groups), catch: (e) => e }),
    ),
  )

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
 * Lag from Kafka and the members' own reports (from Redis or the database, whichever answers), so
 * what the members wait on shows while Kafka, or one of the stores, is down.
 */
const kafkaConsumerCheck = (
  kafka: Kafka["Type"],
  groups: ReadonlyArray<WatchedGroup>,
  reports: MemberReports["Type"],
) =>
  Effect.gen(function* () {
    const [figures, seen] = yield* Effect.all(
      [
        Effect.either(groupFigures(kafka, groups)),
        Effect.forEach(groups, (g) => reports.read(g.group), { concurrency: "unbounded" }),
      ],
      { concurrency: "unbounded" },
    )
    const why: Array<string> = []
    const result: Record<string, Record<string, unknown>> = {}
    for (const [i, { group }] of groups.entries()) {
      const members = seen[i]!
      for (const m of members) {
        for (const w of m.waiting)
          why.push(
            `${m.member} of ${group} waits on ${w.dependency} since ${new Date(w.since).toISOString()}`,
          )
        if (m.ageMs > staleAfterMs)
          why.push(`${m.member} of ${group} has not reported for ${Math.round(m.ageMs / 1000)} s`)
      }
      result[group] = {
        ...(figures._tag === "Right" ? figures.right[group] : {}),
        reports: members.map(shown),
      }
    }
    if (figures._tag === "Left") why.unshift(`Kafka: ${messageOf(figures.left)}`)
    else
      for (const [group, f] of Object.entries(figures.right)) {
        if (f.members === 0) why.push(`no member of ${group} is running`)
        if (f.lag > lagLimit) why.push(`${group} is ${f.lag} events behind`)
      }
    return ok({ groups: result }, why.length > 0 ? why.join("; ") : undefined)
  })

const dlqCheck = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  const [row] = yield* sql<{ waiting: number; last_hour: number; newest: Date | null }>`
    SELECT count(*) FILTER (WHERE replay_status IN ('pending', 'failed'))::int AS waiting,
           count(*) FILTER (WHERE failed_at > now() - interval '1 hour')::int AS last_hour,
           max(failed_at) AS newest
    FROM event_dlq`
  const waiting = row?.waiting ?? 0
  return ok(
    { waiting, lastHour: row?.last_hour ?? 0, newestFailedAt: row?.newest ?? null },
    waiting > 0 ? `${waiting} dead-lettered record(s) wait for an operator (bun run dlq stats)` : undefined,
  )
})

const counterValue = (counter: Metric.Metric.Counter<number>) =>
  Effect.map(Metric.value(counter), (s) => Number(s.count))

/** The SWR cache's hit figures; degraded while Redis is unreachable (reads go to the database). */
export const cacheCheck: Check = Effect.gen(function* () {
  const redis = yield* Redis
  const [hits, stale, misses, refreshes] = yield* Effect.all([
    counterValue(cacheHits),
    counterValue(cacheStale),
    counterValue(cacheMisses),
    counterValue(cacheRefreshes),
  ])
  const reads = hits + stale + misses
  const figures = { hits, stale, misses, refreshes, hitRatio: reads === 0 ? null : (hits + stale) / reads }
  const reachable = yield* Effect.either(redis.probe)
  return ok(figures, reachable._tag === "Left" ? "Redis is unreachable: reads go to the database" : undefined)
})

export class Health extends Context.Tag("hashinsight/observe/Health")<
  Health,
  { readonly report: Effect.Effect<HealthReport> }
>() {
  static readonly layer = (options: HealthOptions) =>
    Layer.effect(
      Health,
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const redis = yield* Redis
        const config = yield* AppConfig
        const reports = yield* MemberReports.make
        const kafka = yield* Kafka
        const checks: Record<string, Effect.Effect<CheckResult, never, SqlClient.SqlClient | Redis>> = {
          database: guarded(
            Effect.map(timed(sql`SELECT 1`), (latencyMs) =>
              ok({ latencyMs }, latencyMs > slowMs ? `answered in ${latencyMs} ms` : undefined),
            ),
            "unhealthy",
          ),
          redis: guarded(
            Effect.map(timed(redis.probe), (latencyMs) =>
              ok({ latencyMs }, latencyMs > slowMs ? `answered in ${latencyMs} ms` : undefined),
            ),
            "degraded",
          ),
          outbox: guarded(
            outboxCheck(options.slot ?? defaultSlotFor(Redacted.value(config.databaseUrl))),
            "degraded",
          ),
          kafka_consumer: guarded(kafkaConsumerCheck(kafka, options.groups, reports), "degraded"),
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
        )
        return Health.of({ report: report.pipe(Effect.withSpan("Health.report")) })
      }),
    )
}
