/**
 * The faults, each a scenario the run drives while the load runs: what it breaks, how often, and
 * when each break is over (`cleared`, from which the time to recover is measured). `full` is the
 * command's dose; the suite runs a short one of each.
 */
import { SqlClient } from "@effect/sql"
import { Duration, Effect, Schedule } from "effect"
import { toKafkaMessage } from "../../src/engine/record.ts"
import { consumerGroups } from "../../src/hashinsight/consumers/index.ts"
import { minerTopic } from "../../src/hashinsight/topics.ts"
import { Kafka } from "../../src/platform/kafka.ts"
import { stopMember, up } from "../../src/platform/stack/index.ts"
import { type FaultCluster, KafkaErrorCode } from "../../test/support/fault-cluster.ts"
import { isEmbedded } from "../../test/support/outage.ts"
import { embeddedPostgres, restartPostgres } from "../../test/support/postgres-restart.ts"
import { type Poison, unapplied } from "./audit.ts"
import type { Platform, RelayMode } from "./platform.ts"
import type { Rng } from "./prng.ts"

export interface ScenarioContext {
  readonly platform: Platform
  readonly cluster: FaultCluster
  readonly rng: Rng
  readonly full: boolean
  readonly tenantId: string
  readonly slot: string
  /** A fault is over (for a kill: the moment of the kill): the time to recover counts from here. */
  readonly cleared: (label: string) => Effect.Effect<void>
  readonly poison: Array<Poison>
  readonly notes: Array<string>
}

type Run = (ctx: ScenarioContext) => Effect.Effect<void, unknown, SqlClient.SqlClient | Kafka>

export interface Scenario {
  readonly about: string
  /** Why it cannot run here (e.g. the database is not the embedded one), or undefined. */
  readonly unavailable?: () => string | undefined
  readonly run: Run
}

const sleepMs = (ms: number) => Effect.sleep(Duration.millis(ms))

/** Drops the relays' slot once no walsender holds it (one lingers a moment after its relay died). */
const dropSlot = (slot: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.gen(function* () {
      yield* sql`SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots
                 WHERE slot_name = ${slot} AND NOT active`
      const left = yield* sql`SELECT 1 FROM pg_replication_slots WHERE slot_name = ${slot}`
      if (left.length > 0) return yield* Effect.fail("slot still active")
    }).pipe(Effect.retry({ schedule: Schedule.spaced("100 millis"), times: 200 })),
  )

const relayKill: Run = (ctx) =>
  Effect.gen(function* () {
    const { platform, rng } = ctx
    const kills = ctx.full ? 20 : 2
    const modes: Array<RelayMode> = []
    for (let i = 0; i < kills; i++) {
      yield* sleepMs(rng.between(300, 1500))
      if (i === Math.floor(kills / 2)) {
        // Both relays gone and the slot with them: the next WAL relay creates a new slot, whose
        // catch-up must skip what was delivered (issue 15), and the poll relay sends only the rest.
        for (const r of platform.relays) yield* r.stop("SIGKILL")
        yield* dropSlot(ctx.slot)
        for (const r of platform.relays) yield* r.start(platform.relayArgv(i % 2 === 0 ? "wal" : "poll"))
        ctx.notes.push("both relays killed, their slot dropped, and started again: a new slot's catch-up")
      } else {
        const victim = rng.pick(platform.relays.filter((r) => r.alive()))
        yield* victim.stop("SIGKILL")
        const mode = rng.pick(["wal", "poll"] as const)
        modes.push(mode)
        yield* victim.start(platform.relayArgv(mode))
      }
      yield* platform.relaysSettled
      yield* ctx.cleared(`relay kill ${i + 1}`)
    }
    ctx.notes.push(
      `${kills} relay SIGKILLs; restarted in ${modes.filter((m) => m === "wal").length}× WAL, ${modes.filter((m) => m === "poll").length}× poll mode (the survivor takes over as standby → active)`,
    )
  })

const memberKill: Run = (ctx) =>
  Effect.gen(function* () {
    const kills = ctx.full ? 20 : 2
    for (let i = 0; i < kills; i++) {
      yield* sleepMs(ctx.rng.between(500, ctx.full ? 2500 : 1200))
      const victim = ctx.rng.pick(ctx.platform.members.filter((m) => m.proc.alive()))
      yield* victim.proc.stop("SIGKILL")
      yield* victim.proc.start()
      yield* ctx.cleared(`${victim.proc.name} kill`)
    }
    // One more once the groups caught up: what a single crash costs, not a pile-up of them.
    yield* Effect.map(unapplied(ctx.tenantId, Date.now()), (n) => n === 0).pipe(
      Effect.filterOrFail((quiet) => quiet),
      Effect.retry(Schedule.spaced("250 millis")),
      Effect.timeout("3 minutes"),
      Effect.ignore,
    )
    yield* sleepMs(1000)
    const victim = ctx.rng.pick(ctx.platform.members.filter((m) => m.consumer === "portfolio"))
    yield* victim.proc.stop("SIGKILL")
    yield* victim.proc.start()
    yield* ctx.cleared(`isolated ${victim.proc.name} kill`)
    ctx.notes.push(`${kills} member SIGKILLs, each restarted at once; then one more, isolated`)
  })

const apiKill: Run = (ctx) =>
  Effect.gen(function* () {
    const kills = ctx.full ? 6 : 2
    for (let i = 0; i < kills; i++) {
      yield* sleepMs(ctx.rng.between(800, 2500))
      yield* ctx.platform.api.stop("SIGKILL")
      yield* sleepMs(200)
      yield* ctx.platform.api.start()
      yield* ctx.platform.apiUp
      yield* ctx.cleared(`api kill ${i + 1}`)
    }
    ctx.notes.push(`${kills} API SIGKILLs with keyed writes in flight, clients retrying with their keys`)
  })

const postgres: Run = (ctx) =>
  Effect.gen(function* () {
    const modes = ctx.full
      ? (["fast", "immediate", "fast", "immediate"] as const)
      : (["fast", "immediate"] as const)
    for (const mode of modes) {
      yield* sleepMs(ctx.rng.between(1500, 4000))
      yield* restartPostgres(mode)
      yield* ctx.cleared(`postgres restart -m ${mode}`)
    }
    ctx.notes.push(`PostgreSQL restarted ${modes.join(", ")}`)
  })

const redis: Run = (ctx) =>
  Effect.gen(function* () {
    const downFor = ctx.full ? 30_000 : 3_000
    yield* sleepMs(ctx.rng.between(1000, 2500))
    yield* Effect.promise(() => stopMember("redis"))
    yield* sleepMs(300)
    yield* Effect.promise(() => up({}))
    yield* ctx.cleared("redis restart")
    yield* sleepMs(ctx.rng.between(1000, 2500))
    yield* Effect.promise(() => stopMember("redis"))
    yield* sleepMs(downFor)
    yield* Effect.promise(() => up({}))
    yield* ctx.cleared(`redis down ${downFor / 1000} s`)
    ctx.notes.push(`Redis restarted, then down for ${downFor / 1000} s`)
  })

const brokers: Run = (ctx) =>
  Effect.gen(function* () {
    const { cluster, rng } = ctx
    const downFor = ctx.full ? 8_000 : 2_000
    // The short run leaves brokers up: every member's consumer restarts and rejoins after a broker
    // comes back, a rebalance storm far longer than the outage, which the suite cannot afford.
    const victims = ctx.full ? [1, 2, 3] : []
    for (const b of victims) {
      yield* sleepMs(rng.between(500, 1500))
      yield* Effect.promise(() => cluster.down(b))
      yield* sleepMs(downFor)
      yield* Effect.promise(() => cluster.up(b))
      yield* ctx.cleared(`broker ${b} down ${downFor / 1000} s`)
    }
    const moves = ctx.full ? 8 : 2
    for (let i = 0; i < moves; i++) {
      const topic = rng.pick(["events.treasury", "events.miner", "events.crm"])
      yield* Effect.promise(() => cluster.leader(topic, rng.between(0, 3), rng.between(1, 3)))
    }
    yield* ctx.cleared(`${moves} partition leaders moved`)
    yield* Effect.promise(() =>
      cluster.produceErrors(KafkaErrorCode.NOT_LEADER_FOR_PARTITION, ctx.full ? 20 : 5),
    )
    yield* Effect.promise(() =>
      cluster.requestErrors("Fetch", KafkaErrorCode.NOT_LEADER_FOR_PARTITION, ctx.full ? 20 : 5),
    )
    yield* Effect.promise(() => cluster.produceErrors(KafkaErrorCode.REQUEST_TIMED_OUT, ctx.full ? 10 : 3))
    yield* sleepMs(1000)
    yield* ctx.cleared("produce and fetch errors")
    const spike = ctx.full ? 5_000 : 1_500
    for (const b of [1, 2, 3]) yield* Effect.promise(() => cluster.rtt(b, 400))
    yield* sleepMs(spike)
    for (const b of [1, 2, 3]) yield* Effect.promise(() => cluster.rtt(b, 0))
    yield* ctx.cleared(`400 ms broker latency for ${spike / 1000} s`)
    ctx.notes.push(
      `${victims.length > 0 ? `brokers ${victims.join(", ")} down ${downFor / 1000} s each, ` : ""}${moves} leader moves, injected Produce/Fetch errors, a 400 ms latency spike`,
    )
  })

const stall: Run = (ctx) =>
  Effect.gen(function* () {
    const times = ctx.full ? 3 : 1
    for (let i = 0; i < times; i++) {
      yield* sleepMs(ctx.rng.between(800, 2000))
      const victim = ctx.rng.pick(
        ctx.platform.members.filter((m) => m.consumer === "portfolio" && m.proc.alive()),
      )
      // Past its 6 s session: the group moves its partitions while it holds units and locks, and
      // what it commits on waking must be refused (inbox, fencing), not applied again.
      yield* victim.proc.signal("SIGSTOP")
      yield* sleepMs(8_000)
      yield* victim.proc.signal("SIGCONT")
      yield* ctx.cleared(`${victim.proc.name} stalled 8 s`)
    }
    ctx.notes.push(
      `${times} portfolio member(s) stopped (SIGSTOP) for 8 s mid-stream, past their session, then resumed`,
    )
  })

const poison: Run = (ctx) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const kafka = yield* Kafka
    const producer = yield* kafka.producer()
    const n = ctx.full ? 10_000 : 300
    const groups = [consumerGroups.portfolio, consumerGroups.intel]
    const records = Array.from({ length: n }, () => {
      const id = crypto.randomUUID()
      ctx.poison.push({ id, groups })
      return toKafkaMessage({
        id,
        aggregatetype: minerTopic.aggregatetype,
        aggregateid: `poison-${id}`,
        type: "MinerAdded",
        payload: '{"minerId": "truncated',
        tenantId: ctx.tenantId,
        traceparent: null,
        eventVersion: 1,
      })
    })
    yield* sleepMs(1000)
    const sentAt = Date.now()
    for (let i = 0; i < n; i += 1000)
      yield* Effect.promise(() =>
        producer.send({ topic: minerTopic.name, messages: records.slice(i, i + 1000) }),
      )
    const entries = sql<{ consumer_group: string; n: number; occurrences: number }>`
      SELECT consumer_group, count(*)::int AS n, sum(occurrences)::int AS occurrences
      FROM event_dlq WHERE tenant_id = ${ctx.tenantId} GROUP BY 1`
    const drained: Record<string, number> = {}
    while (Object.keys(drained).length < groups.length && Date.now() - sentAt < 300_000) {
      const rows = yield* entries.pipe(Effect.orElseSucceed(() => []))
      for (const r of rows)
        if (r.n >= n && drained[r.consumer_group] === undefined)
          drained[r.consumer_group] = Date.now() - sentAt
      yield* sleepMs(100)
    }
    yield* ctx.cleared(`${n} poison records`)
    for (const g of groups) {
      const ms = drained[g]
      ctx.notes.push(
        ms === undefined
          ? `${g}: ${n} poison records not all dead-lettered within 5 minutes`
          : `${g}: ${n} poison records dead-lettered in ${(ms / 1000).toFixed(1)} s (${Math.round(n / (ms / 1000))}/s, while the load ran)`,
      )
    }
    // Delivered again (a relay duplicate, a restart before the offset commit): counted on the entry.
    const again = records.slice(0, Math.ceil(n / 10))
    yield* Effect.promise(() => producer.send({ topic: minerTopic.name, messages: again }))
    yield* Effect.gen(function* () {
      const rows = yield* entries
      if (!groups.every((g) => rows.find((r) => r.consumer_group === g)?.occurrences === n + again.length))
        return yield* Effect.fail("not yet")
    }).pipe(Effect.retry(Schedule.spaced("200 millis")), Effect.timeout("120 seconds"), Effect.ignore)
    ctx.notes.push(`${again.length} of the poison records delivered again: counted on their entries`)
  }).pipe(Effect.scoped)

export const scenarios = {
  "relay-kill": {
    about: "relays SIGKILLed (WAL and poll, standby takeovers, a slot re-created)",
    run: relayKill,
  },
  "member-kill": { about: "consumer members SIGKILLed at random and restarted", run: memberKill },
  "api-kill": { about: "the API SIGKILLed with keyed writes in flight", run: apiKill },
  postgres: {
    about: "PostgreSQL restarted, fast and immediate",
    unavailable: () =>
      embeddedPostgres === undefined ? "DATABASE_URL is not the embedded server" : undefined,
    run: postgres,
  },
  redis: {
    about: "Redis restarted, then down for a while",
    unavailable: () => (isEmbedded("redis") ? undefined : "REDIS_URL is not the embedded server"),
    run: redis,
  },
  brokers: { about: "brokers down and up, leaders moved, produce/fetch errors, latency", run: brokers },
  stall: { about: "a portfolio member frozen past its session mid-stream", run: stall },
  poison: { about: "a burst of poison records, some delivered again", run: poison },
} satisfies Record<string, Scenario>

export type ScenarioName = keyof typeof scenarios
export const scenarioNames = Object.keys(scenarios) as Array<ScenarioName>
