/**
 * Holding a partition through a dependency outage. When an attempt fails `unavailable` (classify.ts),
 * the event's retry budget is not the thing to spend: a database restart or a Redis failover outlasts
 * any policy's few attempts, and dead-lettering every event in flight fills the DLQ with good events.
 * Instead the unit waits where it is — nothing after it on its partition runs, no offset moves past
 * it — probing the dependency on a capped backoff for as long as it takes, then runs again with its
 * budget intact.
 *
 * The rule that keeps an event from holding forever when it is the cause: the verdict must be
 * confirmed. If the dependency answers its probe at once, this member sees no outage and the failure
 * counts as an attempt of the event (`answered`). An event whose own statement takes the database
 * down (a backend crash, an out-of-memory kill, an operator terminating its connection) does cause
 * real outages; so an event (or chunk) is held through `outageLimit` of them for free, after which
 * each one counts as an attempt too — it still waits for the dependency, then goes on to the DLQ
 * with its last failure once the policy's attempts are spent.
 *
 * A hold gives way when the partition is no longer ours to process (`stop`: the member is draining,
 * or a rebalance made the batch stale); the unit then counts as not done, and its records are
 * fetched again by whoever owns the partition. While any unit holds on a dependency, the member's
 * `consumer_dependency_unavailable{group,dependency}` gauge is 1 and its report says what it waits on.
 */
import { SqlClient } from "@effect/sql"
import { Clock, Duration, Effect, Metric, Schedule } from "effect"
import { Kafka } from "../../platform/kafka.ts"
import { Redis } from "../../platform/redis.ts"
import type { Dependency } from "./classify.ts"
import * as M from "./metrics.ts"
import { backoffSchedule } from "./retry.ts"

/** Probes of an unreachable dependency: soon at first, then every 5 s at most. */
export const outagePolicy = { baseDelayMs: 100, factor: 2, capMs: 5_000, jitter: 0.2 }

/** Outages an event (or a chunk) is held through before a dependency failure under it counts as its own. */
export const outageLimit = 3

export type Held =
  /** The dependency answered after failing its probe: an outage, waited out. */
  | "up"
  /** The dependency answered the first probe: no outage this member can see. */
  | "answered"
  /** `stop` said the unit is no longer ours to finish. */
  | "abandoned"

export interface Waiting {
  readonly dependency: Dependency
  /** Epoch ms when the first unit started waiting on it. */
  readonly since: number
  readonly error: string
}

const dependencies: ReadonlyArray<Dependency> = ["database", "redis", "kafka"]

const stopPoll = Duration.millis(100)

export type Outages = Effect.Effect.Success<ReturnType<typeof makeOutages>>

export const makeOutages = (group: string) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const redis = yield* Redis
    const kafka = yield* Kafka
    const probes: Record<Dependency, Effect.Effect<unknown, unknown>> = {
      // Twice: the pool may hand out a connection that died under the failed attempt; the next
      // checkout gets another one.
      database: sql`SELECT 1`.pipe(Effect.retry({ times: 1 }), Effect.timeout(Duration.seconds(2))),
      redis: redis.probe,
      kafka: kafka.probe,
    }
    const tagged = <T, I, O>(m: Metric.Metric<T, I, O>, dependency: Dependency) =>
      m.pipe(Metric.tagged("group", group), Metric.tagged("dependency", dependency))
    const schedule = backoffSchedule(outagePolicy)
    const current = new Map<Dependency, { since: number; error: string; holders: number }>()
    // Scraped from the start as zeros rather than missing until the first outage.
    yield* Effect.forEach(
      dependencies,
      (d) =>
        Effect.zipRight(
          Metric.set(tagged(M.dependencyUnavailable, d), 0),
          Metric.incrementBy(tagged(M.outageRetries, d), 0),
        ),
      { discard: true },
    )

    const enter = (dependency: Dependency, error: string) =>
      Effect.gen(function* () {
        const entry = current.get(dependency)
        if (entry) {
          entry.holders += 1
          entry.error = error
          return
        }
        current.set(dependency, { since: yield* Clock.currentTimeMillis, error, holders: 1 })
        yield* Metric.set(tagged(M.dependencyUnavailable, dependency), 1)
        yield* Effect.logWarning(`${group} holds its partitions: ${dependency} is unreachable (${error})`)
      })

    const leave = (dependency: Dependency) =>
      Effect.gen(function* () {
        const entry = current.get(dependency)
        if (!entry || --entry.holders > 0) return
        current.delete(dependency)
        yield* Metric.set(tagged(M.dependencyUnavailable, dependency), 0)
        const seconds = ((yield* Clock.currentTimeMillis) - entry.since) / 1000
        yield* Effect.logInfo(`${group}: ${dependency} is back after ${seconds.toFixed(1)} s`)
      })

    const untilUp = (dependency: Dependency) =>
      probes[dependency].pipe(
        Effect.tapError(() => Metric.increment(tagged(M.outageRetries, dependency))),
        Effect.retry(schedule),
        Effect.orDie,
        Effect.as<Held>("up"),
      )

    const untilStopped = (stop: () => boolean) =>
      Effect.sync(stop).pipe(
        Effect.repeat({ schedule: Schedule.spaced(stopPoll), until: (stopped) => stopped }),
        Effect.as<Held>("abandoned"),
      )

    /** Waits until `dependency` answers its probe, unless it answers at once or `stop` says so first. */
    const hold = (dependency: Dependency, error: string, stop: () => boolean): Effect.Effect<Held> =>
      Effect.gen(function* () {
        if (yield* Effect.isSuccess(probes[dependency])) return "answered"
        return yield* Effect.acquireUseRelease(
          enter(dependency, error),
          () => Effect.race(untilUp(dependency), untilStopped(stop)),
          () => leave(dependency),
        )
      })

    /**
     * Marks `dependency` unreachable for something other than a unit — the member's own Kafka
     * consumer between a crash and its next join — until the returned effect runs.
     */
    const mark = (dependency: Dependency, error: string): Effect.Effect<Effect.Effect<void>> =>
      Effect.as(enter(dependency, error), leave(dependency))

    const waiting = (): ReadonlyArray<Waiting> =>
      [...current].map(([dependency, { since, error }]) => ({ dependency, since, error }))

    return { hold, mark, waiting }
  })
