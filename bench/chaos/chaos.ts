/**
 * One chaos run: a Kafka fault cluster and a migrated database of the run's own (dropped after), a
 * CRM webhook sink, readers of every platform topic, the platform's processes; then each scenario in
 * turn on a tenant of its own — steady keyed writes, the scenario's faults, quiescence, the audit.
 */
import { Duration, Effect, Fiber, Layer, Redacted, Schedule } from "effect"
import { createTenant } from "../../src/http/tenants.ts"
import { AppConfig } from "../../src/platform/config.ts"
import { Kafka } from "../../src/platform/kafka.ts"
import { webhookSink } from "../../test/support/e2e-webhook-sink.ts"
import { faultCluster } from "../../test/support/fault-cluster.ts"
import { collectTopic, relayDatabase } from "../../test/support/relay-kit.ts"
import { type AuditResult, audit, lagOf, outboxIds, type Poison, topicNames, unapplied } from "./audit.ts"
import { startLoad } from "./load.ts"
import { startPlatform } from "./platform.ts"
import { seeded } from "./prng.ts"
import { type ScenarioContext, type ScenarioName, scenarios } from "./scenarios.ts"

export interface ChaosOptions {
  readonly scenarios: ReadonlyArray<ScenarioName>
  /** Seconds of load per scenario (faults that take longer extend it). */
  readonly secondsEach: number
  /** Writes per second. */
  readonly rate: number
  readonly seed: number
  readonly members: number
  /** The command's dose of faults; the suite's short run has fewer. */
  readonly full: boolean
  readonly logDir: string
  readonly progress?: (line: string) => void
}

export interface Recovery {
  readonly fault: string
  /** From the fault cleared until every event committed before then was applied by every group; undefined: not within 3 minutes. */
  readonly ms: number | undefined
}

export interface ScenarioResult {
  readonly scenario: ScenarioName
  readonly skipped?: string
  readonly audit?: AuditResult
  readonly maxLag: number
  readonly recoveries: ReadonlyArray<Recovery>
  /** From the load's end until the backlog, every group's lag and its unapplied events were 0. */
  readonly quiescedMs: number | undefined
  readonly seconds: number
  readonly notes: ReadonlyArray<string>
}

/** Whether a scenario passed: audited, nothing lost, applied twice, out of order, executed twice; only 503s. */
export const passed = (r: ScenarioResult) =>
  r.skipped !== undefined ||
  (r.audit !== undefined && r.audit.problems.length === 0 && r.quiescedMs !== undefined)

const marketData = { btcPriceUsd: 100_000, difficulty: 1.1e14, blockRewardBtc: 3.125, feesBtcPerBlock: 0.1 }

const until = <E, R>(check: Effect.Effect<boolean, E, R>, timeout: Duration.DurationInput) =>
  check.pipe(
    Effect.orElseSucceed(() => false),
    Effect.filterOrFail((ok) => ok),
    Effect.retry(Schedule.spaced("250 millis")),
    Effect.timeout(timeout),
    Effect.option,
    Effect.map((o) => o._tag === "Some"),
  )

export const runChaos = (options: ChaosOptions) =>
  Effect.gen(function* () {
    const say = options.progress ?? (() => {})
    const cluster = yield* faultCluster()
    const db = yield* relayDatabase
    const previousBrokers = process.env.KAFKA_BROKERS
    yield* Effect.acquireRelease(
      Effect.sync(() => {
        process.env.KAFKA_BROKERS = cluster.bootstrap
      }),
      () =>
        Effect.sync(() => {
          process.env.KAFKA_BROKERS = previousBrokers
        }),
    )
    const kafka = yield* Layer.build(Kafka.layerConfig.pipe(Layer.provide(AppConfig.layer))).pipe(
      Effect.orDie,
    )
    const services = Layer.merge(db.layer, Layer.succeedContext(kafka))

    return yield* Effect.gen(function* () {
      const sink = yield* webhookSink
      const readers = yield* Effect.forEach(topicNames, collectTopic)
      const slot = db.name.slice(0, 63)
      say(
        `platform: API, 2 relays, ${options.members} members per group; Kafka fault cluster ${cluster.bootstrap}`,
      )
      const platform = yield* startPlatform({
        databaseUrl: db.url,
        kafkaBrokers: cluster.bootstrap,
        webhookUrl: sink.url.toString(),
        slot,
        members: options.members,
        logDir: options.logDir,
      })
      const admin = yield* (yield* Kafka).admin
      const rng = seeded(options.seed)
      const results: Array<ScenarioResult> = []

      for (const name of options.scenarios) {
        const scenario = scenarios[name]
        const skipped = "unavailable" in scenario ? scenario.unavailable() : undefined
        if (skipped !== undefined) {
          results.push({
            scenario: name,
            skipped,
            maxLag: 0,
            recoveries: [],
            quiescedMs: 0,
            seconds: 0,
            notes: [],
          })
          say(`${name}: skipped (${skipped})`)
          continue
        }
        say(`${name}: ${scenario.about}`)
        const started = Date.now()
        const tenant = yield* createTenant(`chaos-${name}-${Date.now().toString(36)}`)
        const apiKey = Redacted.value(tenant.apiKey)
        yield* Effect.tryPromise(() =>
          fetch(`${platform.url}/api/ops/market`, {
            method: "POST",
            headers: {
              Authorization: `Bearer ${apiKey}`,
              "Content-Type": "application/json",
              "Idempotency-Key": `market-${tenant.id}`,
            },
            body: JSON.stringify(marketData),
          }),
        ).pipe(
          Effect.filterOrFail((r) => r.status < 300),
          Effect.retry(Schedule.spaced("250 millis").pipe(Schedule.upTo("30 seconds"))),
          Effect.orDie,
        )

        const recoveries: Array<Recovery> = []
        const watchers: Array<Fiber.RuntimeFiber<void>> = []
        const cleared = (fault: string) =>
          Effect.gen(function* () {
            const at = Date.now()
            const fiber = yield* until(
              Effect.map(unapplied(tenant.id, at), (n) => n === 0),
              "3 minutes",
            ).pipe(
              Effect.tap((ok) =>
                Effect.sync(() => recoveries.push({ fault, ms: ok ? Date.now() - at : undefined })),
              ),
              Effect.asVoid,
              Effect.provide(services),
              Effect.forkDaemon,
            )
            watchers.push(fiber)
          })
        let maxLag = 0
        const sampler = yield* Effect.gen(function* () {
          const lag = yield* lagOf(admin).pipe(Effect.orElseSucceed(() => ({})))
          maxLag = Math.max(maxLag, ...Object.values(lag))
        }).pipe(Effect.repeat(Schedule.spaced("1 second")), Effect.forkScoped)

        const poison: Array<Poison> = []
        const notes: Array<string> = []
        const ctx: ScenarioContext = {
          platform,
          cluster,
          rng,
          full: options.full,
          tenantId: tenant.id,
          slot,
          cleared,
          poison,
          notes,
        }
        const load = startLoad({
          url: platform.url,
          apiKey,
          rate: options.rate,
          users: 40,
          prefix: name,
          rng,
        })
        yield* Effect.sleep("1 second")
        const faults = yield* Effect.fork(scenario.run(ctx))
        yield* Effect.sleep(Duration.seconds(options.secondsEach))
        const faultExit = yield* Fiber.await(faults)
        if (faultExit._tag === "Failure")
          notes.push(`the scenario's faults failed: ${String(faultExit.cause)}`)
        const report = yield* Effect.promise(() => load.stop())
        const loadEnded = Date.now()
        say(
          `${name}: load stopped after ${((loadEnded - started) / 1000).toFixed(0)} s, ${load.accepted()} writes accepted; waiting for quiescence`,
        )
        // Also the scenario's own faults must be over: the platform comes back whole.
        if (!platform.api.alive()) yield* platform.api.start()
        // Quiet: every committed event of the tenant read back from Kafka, applied (or dead-lettered)
        // by every group that handles it, and no group behind on any partition. (The WAL relay's
        // delivered watermark trails what Kafka acknowledged and stays behind while no events flow,
        // so it cannot say "all delivered" once the load has stopped: Kafka itself does.)
        const state = Effect.gen(function* () {
          const received = new Set(readers.flatMap((r) => r.received.map((x) => x.headers.id)))
          const ids = yield* outboxIds(tenant.id)
          return {
            notInKafka: ids.filter((id) => !received.has(id)).length,
            unapplied: yield* unapplied(tenant.id),
            lag: yield* lagOf(admin),
          }
        })
        const isQuiet = (s: Effect.Effect.Success<typeof state>) =>
          s.notInKafka === 0 && s.unapplied === 0 && Object.values(s.lag).every((n) => n === 0)
        const quiet = yield* until(Effect.map(state, isQuiet), "3 minutes")
        if (!quiet) notes.push(`not quiet after 3 minutes: ${JSON.stringify(yield* Effect.either(state))}`)
        const quiescedMs = quiet ? Date.now() - loadEnded : undefined
        yield* Effect.forEach(watchers, Fiber.join, { discard: true }).pipe(
          Effect.timeout("3 minutes"),
          Effect.ignore,
        )
        yield* Fiber.interrupt(sampler)
        yield* Effect.forEach(readers, (r) => Effect.ignore(r.drain), { discard: true })
        if (report.shed > 0) notes.push(`${report.shed} writes not started: every user had one in flight`)
        const result = yield* audit({
          tenantId: tenant.id,
          load: report,
          received: readers.flatMap((r) => r.received),
          webhook: sink.requests,
          poison,
        }).pipe(Effect.retry({ times: 5, schedule: Schedule.spaced("1 second") }))
        results.push({
          scenario: name,
          audit: result,
          maxLag,
          recoveries,
          quiescedMs,
          seconds: (Date.now() - started) / 1000,
          notes,
        })
        say(
          `${name}: ${result.problems.length === 0 && quiet ? "passed" : `FAILED: ${[...result.problems, ...(quiet ? [] : ["did not quiesce within 3 minutes"])].join("; ")}`}`,
        )
      }
      return results
    }).pipe(Effect.provide(services))
  })
