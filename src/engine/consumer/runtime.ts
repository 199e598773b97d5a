/**
 * One consumer-group member: a kafkajs consumer whose batches go through the processor. A record's
 * offset counts as finished only after it is done (effects committed or dead-lettered); finished
 * offsets are committed every `commitIntervalMs` (see offsets.ts), not after every batch.
 * Fetching runs ahead of processing (read-ahead.ts), so a member that falls behind takes what
 * piled up as one bigger unit. Partitions run concurrently (up to the consumer's `concurrency`),
 * each in order; their small chunks that are ready together share one transaction
 * (group-commit.ts). A crashed consumer (the local mock's SyncGroup
 * INVALID_REQUEST among others) is recreated. Interrupting the member stops taking new units, lets
 * the in-flight ones finish (a unit holding through an outage gives way), commits and leaves.
 *
 * What a member crash costs: a SIGKILLed member keeps its partitions until its session ends, and
 * kafkajs has no static membership. So sessions are short (6 s, the least a broker accepts by
 * default) and heartbeats frequent (1 s); a member about to join waits until members that stopped
 * reporting will be out of the group by the assignment its join starts (member-reports.ts), and the
 * group's leader leaves out of its assignment members whose reports say they are gone
 * (kafka-assigner.ts). Heartbeats come from kafkajs's fetch loop, which read-ahead keeps running
 * while units take long; when a lane is full and `eachBatch` has to wait, it heartbeats itself, so a
 * slow unit or an outage hold never gets a live member rebalanced out. A batch fetched before the
 * latest rebalance is stale: kafkajs fetches again from the committed offsets after every join.
 */
import { hostname } from "node:os"
import { Data, Deferred, Duration, Effect, Exit, Layer, Metric, Runtime, Schedule } from "effect"
import { Kafka, KafkaError } from "../../platform/kafka.ts"
import { memberAssigners } from "../../platform/kafka-assigner.ts"
import { classify } from "./classify.ts"
import type { ConsumerDefinition } from "./definition.ts"
import { makeGroupCommit } from "./group-commit.ts"
import { Locks } from "./lock.ts"
import {
  goneMembers,
  identityData,
  type MemberReport,
  MemberReports,
  reportEvery,
  untilTheDeadAreOut,
} from "./member-reports.ts"
import { consumerRestarts, groupJoins } from "./metrics.ts"
import { makeOffsetTracker } from "./offsets.ts"
import { makeOutages } from "./outage.ts"
import { makeProcessor, type Outcome, type Stop } from "./processor.ts"
import { makeReadAhead } from "./read-ahead.ts"
import { lastOffsetOf, makeParser, type Parsed, plan, type Ready, type Unit } from "./records.ts"

export class ConsumerCrashed extends Data.TaggedError("ConsumerCrashed")<{
  readonly message: string
  readonly cause: unknown
}> {}

export interface MemberOptions {
  readonly sessionTimeoutMs: number
  readonly heartbeatIntervalMs: number
  readonly rebalanceTimeoutMs: number
  /** Most events one chunk transaction handles. */
  readonly maxChunk: number
  /**
   * Chunks smaller than this share transactions across partitions (group-commit.ts); bigger ones
   * already spread a transaction's fixed cost and run on their own, partitions in parallel.
   */
  readonly groupBelow: number
  /**
   * How long such a small chunk waits for others to share its transaction: fuller transactions and
   * less of the member's CPU per event (README, Benchmarks), for this much more latency at most.
   */
  readonly groupLingerMs: number
  /** How often finished offsets are committed (Kafka's own default is 5 s). */
  readonly commitIntervalMs: number
  /** How long the group's leader waits before it hands out an assignment (kafka-assigner.ts). */
  readonly assignSettleMs: number
}

export const defaultMemberOptions: MemberOptions = {
  sessionTimeoutMs: 6_000,
  heartbeatIntervalMs: 1_000,
  rebalanceTimeoutMs: 10_000,
  maxChunk: 500,
  groupBelow: 32,
  groupLingerMs: 20,
  commitIntervalMs: 1_000,
  assignSettleMs: 200,
}

const restartSchedule = Schedule.exponential(Duration.millis(200)).pipe(
  Schedule.union(Schedule.spaced(Duration.seconds(5))),
)

const promise = <A>(op: string, f: () => Promise<A>) =>
  Effect.tryPromise({ try: f, catch: (cause) => new KafkaError({ op, cause }) })

const membersInProcess = new Map<string, number>()

/** `host:pid`; a second member of the same group in one process (tests do that) is `host:pid#2`. */
const memberName = (group: string) => {
  const n = (membersInProcess.get(group) ?? 0) + 1
  membersInProcess.set(group, n)
  return n === 1 ? `${hostname()}:${process.pid}` : `${hostname()}:${process.pid}#${n}`
}

/**
 * Waits for `done`, heartbeating every `everyMs` meanwhile: kafkajs heartbeats only between batches,
 * so an `eachBatch` that waits longer than the session would get its member rebalanced out. A
 * heartbeat that says the group is rebalancing throws, and kafkajs rejoins.
 */
const heartbeatUntil = async (done: Promise<void>, heartbeat: () => Promise<void>, everyMs: number) => {
  let settled = false
  const finished = done.then(() => {
    settled = true
  })
  while (!settled) {
    let timer: ReturnType<typeof setTimeout> | undefined
    await Promise.race([finished, new Promise((resolve) => (timer = setTimeout(resolve, everyMs)))])
    clearTimeout(timer)
    if (!settled) await heartbeat()
  }
}

export const runMember = <R>(def: ConsumerDefinition<R>, options: Partial<MemberOptions> = {}) =>
  Effect.gen(function* () {
    const opts = { ...defaultMemberOptions, ...options }
    const kafka = yield* Kafka
    const reports = yield* MemberReports
    const outages = yield* makeOutages(def.group)
    const processor = yield* makeProcessor(def, outages)
    const runtime = yield* Effect.runtime<never>()
    const parse = makeParser(def)
    const topics = def.subscriptions.map((s) => s.topic.name)
    const joins = Metric.tagged(groupJoins, "group", def.group)
    yield* Metric.incrementBy(joins, 0)
    const run = (unit: Unit, stop: Stop) => Runtime.runPromise(runtime, processor.process(unit, stop))
    const chunk = makeGroupCommit(
      (items: ReadonlyArray<Ready>, stop: Stop) => run({ _tag: "Chunk", items }, stop),
      opts.maxChunk,
      opts.groupLingerMs,
    )

    // What this member tells the others (member-reports.ts), about its current Kafka consumer.
    const member = memberName(def.group)
    const incarnation = () => ({
      incarnation: crypto.randomUUID(),
      startedAt: Date.now(),
      joined: false,
      leader: false,
      partitions: [] as ReadonlyArray<string>,
    })
    let current = incarnation()
    const report = (): MemberReport => {
      const waiting = outages.waiting()
      return {
        member,
        incarnation: current.incarnation,
        startedAt: current.startedAt,
        state: waiting.length > 0 ? "waiting" : current.joined ? "running" : "joining",
        leader: current.leader,
        waiting,
        partitions: current.partitions,
      }
    }
    const reportNow = Effect.suspend(() => reports.write(def.group, report()))
    yield* Effect.addFinalizer(() => reports.remove(def.group, member))
    yield* Effect.forkScoped(Effect.repeat(reportNow, Schedule.spaced(reportEvery)))
    const assigners = memberAssigners({
      userData: () =>
        identityData({ member, incarnation: current.incarnation, startedAt: current.startedAt }),
      gone: (joined) =>
        Runtime.runPromise(
          runtime,
          Effect.map(reports.read(def.group), (seen) => goneMembers(joined, seen)),
        ),
      settleMs: opts.assignSettleMs,
    })
    // Set while the member's own consumer cannot reach Kafka; cleared by its next join.
    let kafkaDown: Effect.Effect<void> | undefined

    const life = Effect.gen(function* () {
      current = incarnation()
      // The leader must know this incarnation before its join reaches it.
      yield* reportNow
      const crashed = yield* Deferred.make<never, ConsumerCrashed>()
      const consumer = yield* kafka.consumer({
        groupId: def.group,
        sessionTimeout: opts.sessionTimeoutMs,
        heartbeatInterval: opts.heartbeatIntervalMs,
        rebalanceTimeout: opts.rebalanceTimeoutMs,
        partitionAssigners: assigners,
      })
      consumer.on(consumer.events.CRASH, (e) =>
        Deferred.unsafeDone(
          crashed,
          Exit.fail(new ConsumerCrashed({ message: String(e.payload.error), cause: e.payload.error })),
        ),
      )
      let generation = 0
      consumer.on(consumer.events.GROUP_JOIN, ({ payload }) => {
        generation += 1
        current.joined = true
        current.leader = payload.isLeader
        current.partitions = Object.entries(payload.memberAssignment).flatMap(([topic, partitions]) =>
          partitions.map((p) => `${topic}/${p}`),
        )
        const back = kafkaDown
        kafkaDown = undefined
        // Reported at once: a leader that dies before its next report must be known as the leader.
        Runtime.runFork(runtime, Effect.all([Metric.increment(joins), reportNow, back ?? Effect.void]))
      })
      const offsets = makeOffsetTracker(consumer)
      yield* Effect.forkScoped(
        offsets.commit.pipe(
          Effect.catchAll((e) => Effect.logDebug(`offset commit deferred: ${e.message}`)),
          Effect.repeat(Schedule.spaced(Duration.millis(opts.commitIntervalMs))),
        ),
      )
      // Fetched batches go to per-partition lanes (read-ahead.ts), so fetching goes on while they are
      // processed. On release no new unit starts and what was only fetched is dropped; the running
      // units finish, then the last commit (before the consumer is disconnected: kafkajs refuses
      // commits once stopped).
      const lanes = makeReadAhead(
        async (_key: string, records: ReadonlyArray<Parsed>, stale: () => boolean) => {
          const { topic, partition } = records[0]!.raw
          for (const unit of plan(records, opts.maxChunk)) {
            if (stale()) return
            const outcome: Outcome = await (unit._tag === "Chunk" && unit.items.length < opts.groupBelow
              ? chunk(unit.items, stale)
              : run(unit, stale))
            if (outcome === "abandoned") return
            offsets.finish(topic, partition, lastOffsetOf(unit))
          }
        },
        {
          capacity: opts.maxChunk,
          concurrency: def.concurrency,
          onError: (error) =>
            Deferred.unsafeDone(
              crashed,
              Exit.fail(
                new ConsumerCrashed({ message: `processing failed: ${String(error)}`, cause: error }),
              ),
            ),
        },
      )
      yield* Effect.addFinalizer(() =>
        Effect.gen(function* () {
          yield* Effect.promise(lanes.close).pipe(
            Effect.timeout(Duration.millis(opts.rebalanceTimeoutMs)),
            Effect.ignore,
          )
          yield* offsets.commit.pipe(
            Effect.catchAll((e) => Effect.logWarning(`final offset commit failed: ${e.message}`)),
          )
        }),
      )
      yield* promise("subscribe", () => consumer.subscribe({ topics, fromBeginning: true }))
      // Connected and subscribed: `run` joins the group at once.
      yield* untilTheDeadAreOut(reports, def.group, member)
      yield* promise("run", () =>
        consumer.run({
          autoCommit: false,
          eachBatchAutoResolve: false,
          partitionsConsumedConcurrently: def.concurrency,
          eachBatch: async ({ batch, resolveOffset, heartbeat, isRunning, isStale }) => {
            const { topic, partition } = batch
            const fetchedIn = generation
            const room = lanes.push(`${topic}\u0000${partition}`, {
              items: batch.messages.map((m) => parse({ ...m, topic, partition })),
              stale: () => !isRunning() || isStale() || generation !== fetchedIn,
            })
            // Where kafkajs fetches from next; what gets committed is what the lane finished.
            if (batch.messages.length > 0) resolveOffset(batch.lastOffset())
            await heartbeatUntil(room, heartbeat, opts.heartbeatIntervalMs)
          },
        }),
      )
      yield* Effect.logInfo(`consumer ${def.name} (${def.group}) running on ${topics.join(", ")}`)
      return yield* Deferred.await(crashed)
    }).pipe(Effect.scoped)

    /** A consumer that lost Kafka is recreated on the restart schedule; the member says it waits. */
    const noteKafka = (e: ConsumerCrashed | KafkaError) =>
      Effect.gen(function* () {
        const verdict = classify(
          e instanceof KafkaError ? e : new KafkaError({ op: "consumer", cause: e.cause }),
        )
        if (verdict.kind === "unavailable" && kafkaDown === undefined)
          kafkaDown = yield* outages.mark("kafka", verdict.message)
      })

    return yield* life.pipe(
      Effect.tapError((e) =>
        Effect.all([
          Effect.logWarning(`consumer ${def.name} restarting: ${e.message}`),
          Metric.increment(Metric.tagged(consumerRestarts, "group", def.group)),
          noteKafka(e),
        ]),
      ),
      Effect.retry(restartSchedule),
    )
  }).pipe(Effect.scoped)

/** What `runMember` needs besides the platform: the member's locks and its reports' store. */
export const MemberServices = Layer.merge(Locks.layer, MemberReports.layer)

/** The member as a layer: runs while the layer is alive, drains when it is released. */
export const memberLayer = <R>(def: ConsumerDefinition<R>, options: Partial<MemberOptions> = {}) =>
  Layer.scopedDiscard(Effect.forkScoped(runMember(def, options))).pipe(Layer.provide(MemberServices))
