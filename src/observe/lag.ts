/**
 * Consumer lag, per group, topic and partition, in offsets and in seconds, with its level, sampled by
 * one fiber per process over one admin client (`LagMonitor`); health and `/metrics` read its latest
 * sample instead of asking Kafka per request, and `bun run lag` prints it.
 *
 * Lag in offsets is the partition's end offset minus the group's committed offset (its low watermark
 * when the group committed nothing). Lag in seconds is now minus the time the first uncommitted
 * record was appended. Kafka's admin API cannot tell a record's timestamp, so, as kafka-lag-exporter
 * does, the monitor keeps a table of the end offsets it sampled and when, and places the committed
 * offset in it: the record was appended between the last sample whose end had not reached it and
 * the first that had. A record older than the monitor's first sample is placed at that sample, so
 * its lag in seconds is a lower bound until the monitor has run as long as the group is behind.
 *
 * Levels follow the specification: `warning` at 1,000 records behind, `critical` at 10,000. A
 * partition is `stalled` in the spirit of Burrow's rules: it has lag, and the group's committed
 * offset on it has not moved for `stallAfter` — the consumer is stuck even when its lag is small.
 */
import { Context, Data, Deferred, Duration, Effect, Layer, Metric, Option, Ref, Schedule } from "effect"
import { messageOf } from "../engine/consumer/classify.ts"
import { AppConfig } from "../platform/config.ts"
import { Kafka } from "../platform/kafka.ts"
import * as M from "./metrics.ts"

/** A consumer group the lag monitor follows, with the topics it reads. */
export interface WatchedGroup {
  readonly group: string
  readonly topics: ReadonlyArray<string>
}

export type LagLevel = "ok" | "warning" | "critical"

export const lagWarningAt = 1_000
export const lagCriticalAt = 10_000

export const levelOf = (lag: number): LagLevel =>
  lag >= lagCriticalAt ? "critical" : lag >= lagWarningAt ? "warning" : "ok"

const levelValue: Record<LagLevel, number> = { ok: 0, warning: 1, critical: 2 }

export interface PartitionLag {
  readonly topic: string
  readonly partition: number
  readonly end: number
  /** null when the group has committed nothing on this partition. */
  readonly committed: number | null
  readonly lag: number
  readonly lagSeconds: number
  /**
   * The first uncommitted record is older than the monitor's first sample: `lagSeconds` is only
   * how long the monitor has seen it.
   */
  readonly lowerBound: boolean
  readonly stalled: boolean
}

export interface GroupLag {
  readonly group: string
  readonly state: string
  /** null when the broker cannot describe groups (the librdkafka mock). */
  readonly members: number | null
  readonly lag: number
  /** The largest of its partitions'. */
  readonly lagSeconds: number
  readonly level: LagLevel
  readonly stalled: boolean
  readonly partitions: ReadonlyArray<PartitionLag>
}

export interface LagSample {
  /** Epoch ms. */
  readonly at: number
  readonly total: number
  readonly level: LagLevel
  readonly groups: ReadonlyArray<GroupLag>
}

/** What the monitor knows: its latest sample, and the error of its latest attempt when that failed. */
export interface LagReading {
  readonly sample: Option.Option<LagSample>
  readonly error: Option.Option<{ readonly message: string; readonly at: number }>
}

export interface LagOptions {
  readonly groups: ReadonlyArray<WatchedGroup>
  /** How often Kafka is sampled (default 5 s). */
  readonly every?: Duration.DurationInput
  /** How long a partition with lag may go without a commit before it counts as stalled (default 60 s). */
  readonly stallAfter?: Duration.DurationInput
}

export class LagSampleFailed extends Data.TaggedError("LagSampleFailed")<{ readonly cause: unknown }> {
  override get message() {
    return `lag sample: ${messageOf(this.cause)}`
  }
}

type Admin = Effect.Effect.Success<Kafka["Type"]["admin"]>

/** How many end-offset samples per partition the time table keeps (at 5 s: the last 4 hours). */
const tableSize = 3_000

/**
 * A sampler with its memory: the end offsets seen per partition and when, and when each group's
 * committed offset on each partition last moved.
 */
export const makeLagSampler = (options: LagOptions) => {
  const stallAfterMs = Duration.toMillis(options.stallAfter ?? Duration.seconds(60))
  /**
   * Per `topic/partition`, in order: each end offset seen, when it was first and last seen (a new
   * point only when the end moved), so records are placed between the last sample that had not
   * seen them and the first that had, however long the partition was quiet before.
   */
  const ends = new Map<string, Array<{ readonly end: number; readonly first: number; last: number }>>()
  /** Per `group topic/partition`: the committed offset and since when it has not moved. */
  const commits = new Map<string, { readonly offset: number | null; readonly since: number }>()

  const noteEnd = (key: string, end: number, at: number) => {
    const table = ends.get(key)
    if (!table) return void ends.set(key, [{ end, first: at, last: at }])
    const latest = table[table.length - 1]!
    if (end === latest.end) {
      latest.last = at
      return
    }
    table.push({ end, first: at, last: at })
    if (table.length > tableSize) table.shift()
  }

  /**
   * When the record at `offset` was appended, by the table (the record exists: offset < end), and
   * whether that is only the table's first point (the record is older).
   */
  const appendedAt = (key: string, offset: number) => {
    const table = ends.get(key)!
    const index = table.findIndex((p) => p.end > offset)
    if (index <= 0) return { at: table[Math.max(index, 0)]!.first, lowerBound: true }
    const before = table[index - 1]!
    const after = table[index]!
    const share = (offset - before.end + 1) / (after.end - before.end)
    return { at: before.last + share * (after.first - before.last), lowerBound: false }
  }

  const sample = (admin: Admin) =>
    Effect.tryPromise({
      try: async (): Promise<LagSample> => {
        const existing = new Set(await admin.listTopics())
        const at = Date.now()
        const topicEnds = new Map<string, Map<number, { low: number; high: number }>>()
        for (const topic of new Set(options.groups.flatMap((g) => g.topics))) {
          if (!existing.has(topic)) continue
          const offsets = await admin.fetchTopicOffsets(topic)
          topicEnds.set(
            topic,
            new Map(offsets.map((o) => [o.partition, { low: Number(o.low), high: Number(o.high) }])),
          )
          for (const o of offsets) noteEnd(`${topic}/${o.partition}`, Number(o.high), at)
        }
        // Membership needs DescribeGroups, which not every broker speaks (the librdkafka mock does not).
        const described = await admin
          .describeGroups(options.groups.map((g) => g.group))
          .catch(() => undefined)
        const groups: Array<GroupLag> = []
        for (const g of options.groups) {
          const topics = g.topics.filter((t) => topicEnds.has(t))
          const partitions: Array<PartitionLag> = []
          const fetched = topics.length === 0 ? [] : await admin.fetchOffsets({ groupId: g.group, topics })
          for (const { topic, partitions: committed } of fetched) {
            for (const p of committed) {
              const end = topicEnds.get(topic)?.get(p.partition)
              if (end === undefined) continue
              const offset = Number(p.offset) >= 0 ? Number(p.offset) : null
              const from = offset ?? end.low
              const lag = Math.max(0, end.high - from)
              const key = `${topic}/${p.partition}`
              const commitKey = `${g.group} ${key}`
              const known = commits.get(commitKey)
              if (!known || known.offset !== offset) commits.set(commitKey, { offset, since: at })
              const since = commits.get(commitKey)!.since
              const appended = lag === 0 ? { at, lowerBound: false } : appendedAt(key, from)
              partitions.push({
                topic,
                partition: p.partition,
                end: end.high,
                committed: offset,
                lag,
                lagSeconds: Math.max(0, (at - appended.at) / 1000),
                lowerBound: appended.lowerBound,
                stalled: lag > 0 && at - since >= stallAfterMs,
              })
            }
          }
          partitions.sort((a, b) =>
            a.topic === b.topic ? a.partition - b.partition : a.topic < b.topic ? -1 : 1,
          )
          const lag = partitions.reduce((n, p) => n + p.lag, 0)
          const d = described?.groups.find((x) => x.groupId === g.group)
          groups.push({
            group: g.group,
            state: d?.state ?? "unknown",
            members: d === undefined ? null : d.members.length,
            lag,
            lagSeconds: Math.max(0, ...partitions.map((p) => p.lagSeconds)),
            level: levelOf(lag),
            stalled: partitions.some((p) => p.stalled),
            partitions,
          })
        }
        const total = groups.reduce((n, g) => n + g.lag, 0)
        return { at, total, level: levelOf(total), groups }
      },
      catch: (cause) => new LagSampleFailed({ cause }),
    })

  return { sample }
}

/** Sets the lag gauges from a sample. */
export const recordLag = (s: LagSample) =>
  Effect.gen(function* () {
    for (const g of s.groups) {
      const byGroup = <T, I, O>(m: Metric.Metric<T, I, O>) => Metric.tagged(m, "group", g.group)
      yield* Metric.set(byGroup(M.groupLagOffsets), g.lag)
      yield* Metric.set(byGroup(M.groupLagSeconds), g.lagSeconds)
      yield* Metric.set(byGroup(M.groupLagLevel), levelValue[g.level])
      yield* Metric.set(byGroup(M.groupStalled), g.stalled ? 1 : 0)
      for (const p of g.partitions) {
        const byPartition = <T, I, O>(m: Metric.Metric<T, I, O>) =>
          byGroup(m).pipe(Metric.tagged("topic", p.topic), Metric.tagged("partition", String(p.partition)))
        yield* Metric.set(byPartition(M.lagOffsets), p.lag)
        yield* Metric.set(byPartition(M.lagSeconds), p.lagSeconds)
      }
    }
    yield* Metric.set(M.totalLagOffsets, s.total)
    yield* Metric.set(M.lagSampleTimestamp, s.at / 1000)
  })

/**
 * The process's lag monitor: a fiber that samples every `every` over one admin client of its own
 * Kafka client (made from the configured brokers once Kafka answers, so the process starts while
 * Kafka is down). `latest` waits for the first attempt, so a health check right after start-up
 * already has a sample.
 */
export class LagMonitor extends Context.Tag("hashinsight/observe/LagMonitor")<
  LagMonitor,
  { readonly latest: Effect.Effect<LagReading> }
>() {
  static readonly layer = (options: LagOptions) =>
    Layer.scoped(
      LagMonitor,
      Effect.gen(function* () {
        const config = yield* AppConfig
        const every = Duration.decode(options.every ?? Duration.seconds(5))
        const sampler = makeLagSampler(options)
        const reading = yield* Ref.make<LagReading>({ sample: Option.none(), error: Option.none() })
        const first = yield* Deferred.make<void>()
        const failed = (cause: unknown) =>
          Ref.update(reading, (r) => ({
            ...r,
            error: Option.some({ message: messageOf(cause), at: Date.now() }),
          })).pipe(Effect.zipRight(Deferred.succeed(first, undefined)))
        const once = (admin: Admin) =>
          sampler.sample(admin).pipe(
            Effect.timeout(Duration.sum(every, Duration.seconds(10))),
            Effect.tap((s) => Ref.set(reading, { sample: Option.some(s), error: Option.none() })),
            Effect.tap(recordLag),
            Effect.tap(() => Deferred.succeed(first, undefined)),
            Effect.catchAll(failed),
          )
        const run = Effect.gen(function* () {
          const kafka = yield* Kafka.make(config.kafkaBrokers, `${config.kafkaClientId}-lag`)
          const admin = yield* kafka.admin
          yield* Effect.repeat(once(admin), Schedule.spaced(every))
        }).pipe(Effect.scoped, Effect.tapError(failed), Effect.retry(Schedule.spaced(every)))
        // Connecting is uninterruptible (kafkajs retries it for a while against a hung or absent
        // broker): shutting down must not wait for that, so the fiber is let go of, not waited on.
        yield* Effect.forkScoped(Effect.disconnect(run))
        const latest = Deferred.await(first).pipe(
          Effect.timeout(Duration.seconds(2)),
          Effect.ignore,
          Effect.zipRight(Ref.get(reading)),
        )
        return LagMonitor.of({ latest })
      }),
    )
}
