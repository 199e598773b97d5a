/**
 * `GET /api/health` and `GET /metrics` against a migrated scratch database (so every figure is
 * exact), the shared Redis and Kafka. Each check is driven out of `healthy` by the state it watches.
 */
import { describe, expect } from "bun:test"
import { SqlClient } from "@effect/sql"
import { Duration, Effect, Exit, Layer, Metric, Redacted, Schedule, Scope } from "effect"
import { cacheHits, cacheMisses } from "../../src/engine/cache/metrics.ts"
import { runRelay } from "../../src/engine/relay/index.ts"
import { healthChecks } from "../../src/hashinsight/health.ts"
import { createTenant } from "../../src/http/tenants.ts"
import { Health } from "../../src/observe/health.ts"
import { LagMonitor } from "../../src/observe/lag.ts"
import { AppConfig } from "../../src/platform/config.ts"
import { Redis } from "../../src/platform/redis.ts"
import { startApi } from "../http/support.ts"
import { insertDlq, insertInbox, migratedScratch, testTenant } from "../ops/dlq-fixtures.ts"
import { withClient } from "../support/database.ts"
import { effectTest } from "../support/effect.ts"
import { uniqueId } from "../support/ids.ts"
import { gaugeOf } from "../support/prometheus.ts"
import { relayConfigFor, relayDatabase } from "../support/relay-kit.ts"

interface Report {
  readonly status: string
  readonly checks: Record<string, { status: string; detail?: string } & Record<string, unknown>>
}

const health = (api: Effect.Effect.Success<ReturnType<typeof startApi>>) =>
  Effect.map(api.call("/api/health"), (r) => ({ status: r.status, report: r.json as Report }))

const scratchApi = Effect.gen(function* () {
  const db = yield* migratedScratch
  const api = yield* startApi(db.url)
  return { db, api, inScratch: withClient(db.url) }
})

describe("GET /api/health", () => {
  effectTest("a quiet platform: seven checks, each healthy with its figures; 200", () =>
    Effect.gen(function* () {
      const { api } = yield* scratchApi
      const { status, report } = yield* health(api)
      expect(status).toBe(200)
      expect(Object.keys(report.checks).sort()).toEqual(
        ["database", "redis", "outbox", "kafka_consumer", "dlq", "forecast", "cache"].sort(),
      )
      for (const name of ["database", "redis", "outbox", "dlq", "forecast"])
        expect({ name, status: report.checks[name]!.status }).toEqual({ name, status: "healthy" })
      // The cache's counters are the process's: earlier tests' reads may already be judged.
      const cache = report.checks.cache!
      const reads = (cache.hits as number) + (cache.stale as number) + (cache.misses as number)
      expect(cache.status).toBe(reads >= 100 && (cache.hitRatio as number) < 0.8 ? "degraded" : "healthy")
      expect(report.checks.database!.latencyMs).toBeNumber()
      expect(report.checks.outbox).toMatchObject({ mode: "poll", unpublished: 0 })
      expect(report.checks.dlq).toMatchObject({ waiting: 0 })
      // The three contract groups, each with its lag (members are unknown on the mock broker).
      const groups = report.checks.kafka_consumer!.groups as Record<string, { lag: number }>
      expect(Object.keys(groups).sort()).toEqual(["crm-sync-group", "intel-group", "portfolio-recalc-group"])
      for (const g of Object.values(groups)) expect(g.lag).toBeNumber()
    }),
  )

  effectTest(
    "dead letters: 10 waiting is healthy, 11 degraded; the rate is dead-lettered ÷ (processed + dead-lettered), in health and on /metrics",
    () =>
      Effect.gen(function* () {
        const { api, inScratch } = yield* scratchApi
        const group = "portfolio-recalc-group"
        yield* inScratch(
          Effect.all([
            insertDlq([
              ...Array.from({ length: 10 }, () => ({ group, topic: "events.miner" })),
              { group, topic: "events.miner", replayStatus: "replayed" as const },
            ]),
            insertInbox(group, 89),
          ]),
        )
        const ten = (yield* health(api)).report.checks.dlq!
        expect(ten).toMatchObject({ status: "healthy", waiting: 10, lastHour: 11, rate: 11 / 100 })
        yield* inScratch(insertDlq([{ group, topic: "events.miner" }]))
        const { status, report } = yield* health(api)
        expect(status).toBe(200)
        expect(report.status).toBe("degraded")
        expect(report.checks.dlq).toMatchObject({
          status: "degraded",
          waiting: 11,
          waitingByGroup: { [group]: 11 },
          rate: 12 / 101,
        })
        expect(report.checks.dlq!.detail).toContain("11 dead-lettered records wait for an operator")
        const text = (yield* api.call("/metrics")).text
        expect(gaugeOf(text, "dlq_waiting_entries", { group })).toBe(11)
        expect(gaugeOf(text, "dlq_ratio", { group })).toBeCloseTo(12 / 101, 10)
      }),
  )

  effectTest(
    "an event unpublished for minutes: outbox degraded, with the backlog and its age; still 200",
    () =>
      Effect.gen(function* () {
        const { api, inScratch } = yield* scratchApi
        yield* inScratch(
          Effect.flatMap(
            SqlClient.SqlClient,
            (
              sql,
            ) => sql`INSERT INTO event_outbox (id, aggregatetype, aggregateid, type, payload, tenant_id, created_at)
              VALUES (${crypto.randomUUID()}, 'miner', 'm-1', 'MinerAdded', '{}', ${testTenant},
                      now() - interval '2 minutes')`,
          ),
        )
        const { status, report } = yield* health(api)
        expect(status).toBe(200)
        expect(report.checks.outbox).toMatchObject({ status: "degraded", mode: "poll", unpublished: 1 })
        expect(report.checks.outbox!.oldestSeconds as number).toBeGreaterThanOrEqual(120)
        expect(report.checks.outbox!.detail).toContain("waited")
        expect(report.checks.database!.status).toBe("healthy")
        const text = (yield* api.call("/metrics")).text
        expect(gaugeOf(text, "outbox_unpublished_events")).toBe(1)
        expect(gaugeOf(text, "outbox_oldest_unpublished_seconds")).toBeGreaterThanOrEqual(120)
      }),
  )

  effectTest(
    "forecast: market data with no forecast degraded, the newest forecast 31 min old degraded, one under 30 min healthy",
    () =>
      Effect.gen(function* () {
        const { api, inScratch } = yield* scratchApi
        const forecastCheck = Effect.map(health(api), (r) => r.report.checks.forecast!)
        const forecastAt = (minutesAgo: number) =>
          inScratch(
            Effect.flatMap(
              SqlClient.SqlClient,
              (
                sql,
              ) => sql`INSERT INTO forecasts (tenant_id, subject_kind, subject_id, breakeven_power_usd_per_kwh,
                  difficulty_growth_per_day, horizon_days, revenue_btc, revenue_usd, computed_at)
                VALUES (${testTenant}, 'model', ${`model-${minutesAgo}`}, 0.09, 0.001, 30, 0.01, 900,
                        now() - make_interval(mins => ${minutesAgo}))`,
            ),
          )
        expect(yield* forecastCheck).toMatchObject({ status: "healthy", ageSeconds: null })
        yield* inScratch(
          Effect.flatMap(
            SqlClient.SqlClient,
            (sql) => sql`INSERT INTO market_data (tenant_id, id, btc_price_usd, difficulty, block_reward_btc,
                fees_btc_per_block, at, created_at)
              VALUES (${testTenant}, ${crypto.randomUUID()}, 90000, 1.2e14, 3.125, 0.02, now() - interval '40 minutes',
                      now() - interval '40 minutes')`,
          ),
        )
        expect(yield* forecastCheck).toMatchObject({ status: "degraded", tenants: 1, behind: 1 })

        yield* forecastAt(31)
        const old = yield* forecastCheck
        expect(old).toMatchObject({ status: "degraded", behind: 0 })
        expect(old.ageSeconds as number).toBeGreaterThanOrEqual(31 * 60)
        expect(old.detail).toContain("the newest forecast is 31 min old")

        yield* forecastAt(29)
        const fresh = yield* forecastCheck
        expect(fresh).toMatchObject({ status: "healthy", behind: 0 })
        expect(fresh.ageSeconds as number).toBeLessThan(30 * 60)
      }),
  )

  effectTest(
    "cache: a hit ratio under 80% once 100 reads were made is degraded; fewer reads are not judged; back over 80% healthy",
    () =>
      Effect.gen(function* () {
        const { api } = yield* scratchApi
        const cacheCheck = Effect.map(health(api), (r) => r.report.checks.cache!)
        // The counters are the process's: make this test's reads dominate whatever came before.
        const start = yield* cacheCheck
        const reads = (c: Record<string, unknown>) =>
          (c.hits as number) + (c.stale as number) + (c.misses as number)
        const hitsSoFar = (start.hits as number) + (start.stale as number)
        const missesToDegrade = Math.max(0, Math.ceil(hitsSoFar / 0.79) - reads(start)) + 1
        if (reads(start) < 100) {
          const before = yield* cacheCheck
          expect(before.status).toBe("healthy")
        }
        yield* Metric.incrementBy(cacheMisses, Math.max(missesToDegrade, 100))
        const low = yield* cacheCheck
        expect(reads(low)).toBeGreaterThanOrEqual(100)
        expect(low.hitRatio as number).toBeLessThan(0.8)
        expect(low).toMatchObject({ status: "degraded" })
        expect(low.detail).toContain("under 80%")

        yield* Metric.incrementBy(cacheHits, reads(low) * 5)
        const high = yield* cacheCheck
        expect(high.hitRatio as number).toBeGreaterThan(0.8)
        expect(high.status).toBe("healthy")
      }),
  )

  effectTest(
    "the outbox streamed by another pgoutput slot (Debezium's): judged by that slot, not by unpublished rows",
    () =>
      Effect.gen(function* () {
        // A database with no slot of our relay, but the slot the Debezium connector would make, and
        // an event older than the poll check's limit (Debezium marks nothing published).
        const db = yield* relayDatabase
        const slot = "hashinsight_outbox_debezium"
        const sql = yield* Effect.provide(SqlClient.SqlClient, db.layer)
        yield* sql`SELECT pg_create_logical_replication_slot(${slot}, 'pgoutput')`
        yield* sql`INSERT INTO event_outbox (id, aggregatetype, aggregateid, type, payload, tenant_id, created_at)
          VALUES (${crypto.randomUUID()}, ${uniqueId("healthtest").replaceAll("-", "_")}, 'a-1', 'Noted',
                  '{}', ${testTenant}, now() - interval '2 minutes')`
        const api = yield* startApi(db.url)
        const stopped = (yield* health(api)).report.checks.outbox!
        expect(stopped).toMatchObject({ status: "degraded", mode: "wal", slot, streaming: false })
        expect(stopped.detail).toBe(`no relay is streaming from slot ${slot}`)

        // A reader streaming from that slot (our relay standing in for the connector): healthy.
        yield* runRelay(relayConfigFor(db, { mode: "wal", slot })).pipe(
          Effect.provide(db.layer),
          Effect.forkScoped,
        )
        const streaming = yield* health(api).pipe(
          Effect.map((r) => r.report.checks.outbox!),
          Effect.filterOrFail((c) => c.streaming === true),
          Effect.retry({ schedule: Schedule.spaced("100 millis") }),
          Effect.timeout("15 seconds"),
        )
        expect(streaming).toMatchObject({ status: "healthy", mode: "wal", slot })
      }),
    { timeout: 60_000 },
  )

  effectTest("the database unreachable: database unhealthy with the reason, the report unhealthy, 503", () =>
    Effect.gen(function* () {
      const { api, db } = yield* scratchApi
      expect((yield* health(api)).status).toBe(200)
      const sql = yield* SqlClient.SqlClient
      yield* sql.unsafe(`ALTER DATABASE ${db.name} WITH ALLOW_CONNECTIONS false`)
      yield* sql`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = ${db.name}`
      const { status, report } = yield* health(api)
      expect(status).toBe(503)
      expect(report.status).toBe("unhealthy")
      expect(report.checks.database!.status).toBe("unhealthy")
      expect(report.checks.database!.detail).toBeString()
      // Redis and the cache do not depend on the database.
      expect(report.checks.redis!.status).toBe("healthy")
      expect(report.checks.cache!.status).toBe("healthy")
    }),
  )
})

describe("Health with hung dependencies", () => {
  effectTest(
    "Redis and Kafka that accept connections and never answer: their checks degraded within the time limit, the report in under 4 s, the database healthy",
    () =>
      Effect.gen(function* () {
        // A server that takes connections and says nothing: a hung dependency, not a down one.
        const silent = yield* Effect.acquireRelease(
          Effect.sync(() =>
            Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {}, open() {}, close() {} } }),
          ),
          (server) => Effect.sync(() => server.stop(true)),
        )
        const hung = `127.0.0.1:${silent.port}`
        const config = yield* AppConfig
        const watched = [{ group: "portfolio-recalc-group", topics: ["events.miner"] }]
        const scope = yield* Scope.make()
        const context = yield* Layer.buildWithScope(
          Layer.provide(
            Health.layer({ groups: watched, checks: healthChecks }),
            Layer.merge(
              LagMonitor.layer({ groups: watched }),
              Layer.scoped(Redis, Redis.make(`redis://${hung}`)),
            ),
          ).pipe(Layer.provide(Layer.succeed(AppConfig, { ...config, kafkaBrokers: [hung] }))),
          scope,
        )
        const [took, report] = yield* Effect.timed(
          Effect.flatMap(Health, (h) => h.report).pipe(Effect.provide(context)),
        )
        expect(Duration.toMillis(took)).toBeLessThan(4_000)
        expect(report.status).toBe("degraded")
        expect(report.checks.database!.status).toBe("healthy")
        expect(report.checks.redis!.status).toBe("degraded")
        expect(report.checks.cache!.status).toBe("degraded")
        expect(report.checks.kafka_consumer).toMatchObject({ status: "degraded", totalLag: null })
        expect(report.checks.kafka_consumer!.detail).toContain("Kafka:")
        // Shutting down does not wait for a connection to Kafka that kafkajs is still trying.
        const [closing] = yield* Effect.timed(Scope.close(scope, Exit.void))
        expect(Duration.toMillis(closing)).toBeLessThan(4_000)
      }),
  )
})

describe("GET /metrics", () => {
  effectTest(
    "Prometheus text: every sample under a declared family; a cached read moves the cache counters by one",
    () =>
      Effect.gen(function* () {
        const { api, inScratch } = yield* scratchApi
        const tenant = yield* inScratch(createTenant(uniqueId("metrics")))
        const scrape = Effect.map(api.call("/metrics"), (r) => {
          expect(r.status).toBe(200)
          expect(r.headers.get("content-type")).toStartWith("text/plain; version=0.0.4")
          return r.text
        })
        const sample = (text: string, name: string) => {
          const line = text.split("\n").find((l) => l.startsWith(`${name} `))
          return line === undefined ? 0 : Number(line.split(" ")[1])
        }
        const before = yield* scrape
        const declared = new Map<string, string>()
        for (const line of before.split("\n")) {
          if (line === "") continue
          const type = /^# TYPE (\S+) (counter|gauge|histogram|summary)$/.exec(line)
          if (type) {
            declared.set(type[1]!, type[2]!)
            continue
          }
          if (line.startsWith("# HELP ")) continue
          const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (-?[0-9.e+-]+|NaN|[+-]Inf)$/.exec(line)
          expect({ line, valid: match !== null }).toEqual({ line, valid: true })
          const family = match![1]!.replace(/_(bucket|sum|count)$/, "")
          expect({
            line,
            declared: declared.has(match![1]!) || declared.get(family) === "histogram",
          }).toEqual({
            line,
            declared: true,
          })
        }
        expect(declared.get("cache_misses_total")).toBe("counter")
        // Effect's active-fiber count goes down as well as up: a gauge, not a counter.
        expect(declared.get("effect_fiber_active")).toBe("gauge")
        const reads = (text: string) =>
          ["cache_hits_total", "cache_stale_total", "cache_misses_total"].reduce(
            (n, m) => n + sample(text, m),
            0,
          )
        const catalogue = yield* api.call("/api/miner-models", { key: Redacted.value(tenant.apiKey) })
        expect(catalogue.status).toBe(200)
        expect(reads(yield* scrape)).toBe(reads(before) + 1)
      }),
  )
})

describe("GET /api/health: what consumer members report", () => {
  effectTest(
    "members' reports: one waiting on a dependency and one that stopped reporting make kafka_consumer degraded, naming both; each shows with its state",
    () =>
      Effect.gen(function* () {
        const { api, inScratch } = yield* scratchApi
        const group = "crm-sync-group"
        const report = (
          member: string,
          state: string,
          waiting: ReadonlyArray<Record<string, unknown>> = [],
        ) =>
          JSON.stringify({
            member,
            incarnation: crypto.randomUUID(),
            startedAt: Date.now() - 60_000,
            state,
            waiting,
            partitions: ["events.crm/0"],
          })
        const since = Date.now() - 12_000
        yield* inScratch(
          Effect.flatMap(
            SqlClient.SqlClient,
            (sql) => sql`INSERT INTO consumer_members (consumer_group, member, report, reported_at) VALUES
              (${group}, 'host-a:1', ${report("host-a:1", "running")}::jsonb, now()),
              (${group}, 'host-b:2', ${report("host-b:2", "waiting", [
                { dependency: "redis", since, error: "redis eval: connect ECONNREFUSED" },
              ])}::jsonb, now()),
              (${group}, 'host-c:3', ${report("host-c:3", "running")}::jsonb, now() - interval '20 seconds'),
              (${group}, 'host-d:4', ${report("host-d:4", "running")}::jsonb, now() - interval '5 minutes')`,
          ),
        )
        const check = (yield* health(api)).report.checks.kafka_consumer!
        // Only this test's members: Redis is shared with the suite, whose real crm-sync members
        // (services, e2e) may have reported there moments ago.
        const shown = (check.groups as Record<string, { reports: Array<Record<string, unknown>> }>)[
          group
        ]!.reports.filter((r) => String(r.member).startsWith("host-"))
        // Gone for minutes: forgotten.
        expect(shown.map((r) => r.member)).toEqual(["host-a:1", "host-b:2", "host-c:3"])
        expect(shown[0]).toMatchObject({
          state: "running",
          stale: false,
          waitingOn: [],
          partitions: ["events.crm/0"],
        })
        expect(shown[1]).toMatchObject({
          state: "waiting",
          stale: false,
          waitingOn: [{ dependency: "redis", since: new Date(since).toISOString() }],
        })
        expect(shown[2]).toMatchObject({ stale: true })
        expect(shown[2]!.reportedSecondsAgo as number).toBeGreaterThanOrEqual(20)
        expect(check.status).toBe("degraded")
        expect(check.detail).toContain(
          `host-b:2 of ${group} waits on redis since ${new Date(since).toISOString()}`,
        )
        expect(check.detail).toContain(`host-c:3 of ${group} has not reported for 20 s`)
        expect(check.detail).not.toContain("host-a:1")
      }),
  )
})
