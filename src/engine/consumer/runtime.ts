/**
 * One consumer-group member: a kafkajs consumer whose batches go through the processor. A record's
 * offset is resolved only after it is done (effects committed or dead-lettered); kafkajs commits
 * resolved offsets after each batch and on rebalance. Partitions run concurrently, each in order.
 * A crashed consumer (the local mock's SyncGroup INVALID_REQUEST among others) is recreated.
 * Interrupting the member stops fetching, lets the in-flight unit finish, commits and leaves.
 */
import { Data, Deferred, Duration, Effect, Exit, Layer, Metric, Runtime, Schedule } from "effect"
import { Kafka, KafkaError } from "../../platform/kafka.ts"
import type { ConsumerDefinition } from "./definition.ts"
import { Locks } from "./lock.ts"
import { consumerRestarts } from "./metrics.ts"
import { makeProcessor } from "./processor.ts"
import { lastOffsetOf, makeParser, plan } from "./records.ts"

export class ConsumerCrashed extends Data.TaggedError("ConsumerCrashed")<{ readonly message: string }> {}

export interface MemberOptions {
  readonly sessionTimeoutMs: number
  readonly heartbeatIntervalMs: number
  readonly rebalanceTimeoutMs: number
  /** Most events one chunk transaction handles. */
  readonly maxChunk: number
}

export const defaultMemberOptions: MemberOptions = {
  sessionTimeoutMs: 30_000,
  heartbeatIntervalMs: 3_000,
  rebalanceTimeoutMs: 30_000,
  maxChunk: 500,
}

const restartSchedule = Schedule.exponential(Duration.millis(200)).pipe(
  Schedule.union(Schedule.spaced(Duration.seconds(5))),
)

const promise = <A>(op: string, f: () => Promise<A>) =>
  Effect.tryPromise({ try: f, catch: (cause) => new KafkaError({ op, cause }) })

export const runMember = <R>(def: ConsumerDefinition<R>, options: Partial<MemberOptions> = {}) =>
  Effect.gen(function* () {
    const opts = { ...defaultMemberOptions, ...options }
    const kafka = yield* Kafka
    const processor = yield* makeProcessor(def)
    const runtime = yield* Effect.runtime<never>()
    const parse = makeParser(def)
    const topics = def.subscriptions.map((s) => s.topic.name)

    const life = Effect.gen(function* () {
      const crashed = yield* Deferred.make<never, ConsumerCrashed>()
      const consumer = yield* kafka.consumer({
        groupId: def.group,
        sessionTimeout: opts.sessionTimeoutMs,
        heartbeatInterval: opts.heartbeatIntervalMs,
        rebalanceTimeout: opts.rebalanceTimeoutMs,
      })
      consumer.on(consumer.events.CRASH, (e) =>
        Deferred.unsafeDone(crashed, Exit.fail(new ConsumerCrashed({ message: String(e.payload.error) }))),
      )
      yield* promise("subscribe", () => consumer.subscribe({ topics, fromBeginning: true }))
      yield* promise("run", () =>
        consumer.run({
          autoCommit: true,
          eachBatchAutoResolve: false,
          partitionsConsumedConcurrently: def.concurrency,
          eachBatch: async ({ batch, resolveOffset, heartbeat, isRunning, isStale }) => {
            const units = plan(
              batch.messages.map((m) => parse({ ...m, topic: batch.topic, partition: batch.partition })),
              opts.maxChunk,
            )
            for (const unit of units) {
              if (!isRunning() || isStale()) return
              await Runtime.runPromise(runtime, processor.process(unit))
              resolveOffset(lastOffsetOf(unit))
              await heartbeat()
            }
          },
        }),
      )
      yield* Effect.logInfo(`consumer ${def.name} (${def.group}) running on ${topics.join(", ")}`)
      return yield* Deferred.await(crashed)
    }).pipe(Effect.scoped)

    return yield* life.pipe(
      Effect.tapError((e) =>
        Effect.zipRight(
          Effect.logWarning(`consumer ${def.name} restarting: ${e.message}`),
          Metric.increment(Metric.tagged(consumerRestarts, "group", def.group)),
        ),
      ),
      Effect.retry(restartSchedule),
    )
  })

/** The member as a layer: runs while the layer is alive, drains when it is released. */
export const memberLayer = <R>(def: ConsumerDefinition<R>, options: Partial<MemberOptions> = {}) =>
  Layer.scopedDiscard(Effect.forkScoped(runMember(def, options))).pipe(Layer.provide(Locks.layer))
