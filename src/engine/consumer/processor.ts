/**
 * Runs units of records to completion: effects committed with their inbox rows, or the record in
 * the DLQ. Only then may the runtime resolve the offset. A chunk of events is claimed and handled
 * in one transaction (the throughput path): the distinct lock keys its events name are taken
 * together first and fenced together at commit; keys its deferred work asks for (`withUnitLocks`)
 * are taken for the unit and, like those, given back only once its transaction is over. When one of its handlers (or the work it deferred
 * with `beforeCommit`) fails, the events before it are redone as a chunk, the failing one continues
 * on the per-event path (its failed try counted as attempt 1) and the rest follow; when the locks
 * cannot be had, or a fence rejects, every event goes the per-event path. Retries wait outside any
 * transaction and any lock. An event the DLQ holds is not run again when Kafka delivers it again
 * (until it is replayed): the claim finds its open entry (inbox.ts) and the repeat is counted on it
 * once the transaction is over; a poison record, or an event another member dead-lettered
 * meanwhile, counts on its entry when written (dlq.ts). A unit whose dependency is unreachable
 * holds where it is until the dependency is back (outage.ts) without spending its events' retry
 * budgets; it is given up (`abandoned`: not done, its offset must not move) only when `stop` says
 * it is no longer ours.
 */
import { SqlClient } from "@effect/sql"
import { Cause, Clock, Context, Data, Duration, Effect, Either, Metric, Schedule, Scope } from "effect"
import { useTenant, withTenant } from "../../platform/db.ts"
import { eventTimeMs } from "../event-time.ts"
import { headersAsText } from "../record.ts"
import { DeferredFailed, makeUnitWork, type UnitLocks, UnitWork } from "./before-commit.ts"
import { classify, type Verdict } from "./classify.ts"
import type { ConsumerDefinition, EventMeta } from "./definition.ts"
import { countRepeats, markReplayed, markReplayFailed, writeDeadLetter } from "./dlq.ts"
import { Fatal } from "./errors.ts"
import { claim, claimReplay, type InboxRow } from "./inbox.ts"
import { fenceAll, type Held, Locks } from "./lock.ts"
import * as M from "./metrics.ts"
import { type Outages, outageLimit } from "./outage.ts"
import { type Parsed, position, type Ready, type Unit } from "./records.ts"
import { retrySchedule } from "./retry.ts"

class ChunkFailed extends Data.TaggedError("ChunkFailed")<{
  /** Index of the event whose handler failed; -1 when the transaction itself failed. */
  readonly index: number
  readonly error: unknown
}> {}

const inboxRow = (r: Ready): InboxRow => ({
  eventId: r.meta.eventId,
  tenantId: r.meta.tenantId,
  eventType: r.meta.eventType,
  topic: r.raw.topic,
  partition: r.raw.partition,
  offset: r.raw.offset,
})

const noOutages = { outages: 0 }

/** Writes to the DLQ must not be lost: keep trying for a while, then fail the batch (no commit). */
const persistently = Schedule.exponential(Duration.millis(100)).pipe(
  Schedule.union(Schedule.spaced(Duration.seconds(2))),
  Schedule.upTo(Duration.seconds(30)),
)

/** `abandoned`: the unit was given up unfinished (see `stop`); its offset must not be finished. */
export type Outcome = "done" | "abandoned"

/** True once the unit's records are no longer this member's to process (draining, rebalanced). */
export type Stop = () => boolean

export const makeProcessor = <R>(def: ConsumerDefinition<R>, outages: Outages) =>
  Effect.gen(function* () {
    const locks = yield* Locks
    const sql = yield* SqlClient.SqlClient
    // The handlers' own services; the transaction's connection (inner context) takes precedence.
    const services = yield* Effect.context<R>()
    const tag = <T, I, O>(m: Metric.Metric<T, I, O>) => Metric.tagged(m, "group", def.group)
    const processed = tag(M.eventsProcessed)
    const dlqTotal = tag(M.eventsDeadLettered)
    const retries = tag(M.handlerRetries)
    const duration = tag(M.handlerDuration)
    const toVisible = tag(M.writeToVisible)
    const processing = tag(M.eventProcessing)
    const skipped = (reason: string) => Metric.tagged(tag(M.eventsSkipped), "reason", reason)
    const schedule = retrySchedule(def.retry)
    // Scraped from the start as zeros rather than missing until the first event.
    yield* Effect.forEach([processed, dlqTotal, retries], (m) => Metric.incrementBy(m, 0), { discard: true })

    /**
     * The SLO figures of events whose effects just committed: write-to-visible from each event id's
     * time, processing from `startedAt`, when the member began the unit that held them.
     */
    const committed = (events: ReadonlyArray<Ready>, startedAt: number) =>
      Effect.suspend(() => {
        const now = Date.now()
        return Effect.forEach(
          events,
          (r) => {
            const at = eventTimeMs(r.meta.eventId)
            return Effect.zipRight(
              Metric.update(processing, (now - startedAt) / 1000),
              at === undefined ? Effect.void : Metric.update(toVisible, Math.max(0, now - at) / 1000),
            )
          },
          { discard: true },
        )
      })

    /** The handler, timed; a defect (a thrown exception) becomes a Fatal: retrying a bug won't help. */
    const invoke = (r: Ready, attempt: number, lock: Held | undefined, unitWork: UnitWork["Type"]) => {
      const meta: EventMeta = { ...r.meta, ...position(r.raw), attempt, lock }
      return Effect.gen(function* () {
        const start = yield* Clock.currentTimeNanos
        yield* (r.handler(r.payload, meta) as Effect.Effect<void, unknown, R | SqlClient.SqlClient>).pipe(
          Effect.mapInputContext((inner: Context.Context<SqlClient.SqlClient>) =>
            Context.add(Context.merge(services, inner), UnitWork, unitWork),
          ),
        )
        const end = yield* Clock.currentTimeNanos
        yield* Metric.update(duration, Number(end - start) / 1e9)
      }).pipe(
        Effect.catchAllDefect((defect) =>
          Effect.fail(
            new Fatal({ message: `handler died: ${Cause.pretty(Cause.die(defect))}`, cause: defect }),
          ),
        ),
      )
    }

    /**
     * What `withUnitLocks` takes for a unit: the keys it holds (`held`, its events' locks and those
     * taken for it so far) with their tokens, the others into `scope`, which closes once the unit's
     * transaction is over.
     */
    const unitLocks =
      (held: Map<string, Held>, scope: Scope.Scope): UnitLocks =>
      (keys) => {
        const missing = [...new Set(keys)].filter((key) => !held.has(key))
        return Effect.map(
          missing.length === 0
            ? Effect.succeed(new Map<string, Held>())
            : Scope.extend(locks.hold(missing), scope),
          (taken) => {
            for (const [key, h] of taken) held.set(key, h)
            return new Map(keys.map((key) => [key, held.get(key)!]))
          },
        )
      }

    /** `use` with a scope of its own, closed once it is over (its transaction included). */
    const inUnitScope = <A, E, R>(use: (scope: Scope.Scope) => Effect.Effect<A, E, R>) =>
      Effect.scoped(Effect.flatMap(Effect.scope, use))

    const deadLetter = (p: Exclude<Parsed, { _tag: "Skip" }>, verdict: Verdict, attempts: number) =>
      Effect.gen(function* () {
        const failure = { errorTag: verdict.tag, errorMessage: verdict.message, attempts }
        if (p.replayDlqId !== undefined && (yield* markReplayFailed(def.group, p.replayDlqId, failure))) {
          yield* Effect.logWarning(
            `replay of DLQ ${p.replayDlqId} failed again: ${verdict.tag} ${verdict.message}`,
          )
        } else {
          const meta = p.meta
          const written = yield* writeDeadLetter({
            group: def.group,
            ...position(p.raw),
            key: p.raw.key?.toString("utf8") ?? null,
            value: p.raw.value?.toString("utf8") ?? null,
            headers: headersAsText(p.raw.headers),
            eventId: meta.eventId ?? null,
            eventType: meta.eventType ?? null,
            tenantId: meta.tenantId ?? null,
            ...failure,
          })
          const at = `${p.raw.topic}/${p.raw.partition}@${p.raw.offset}`
          if (written.occurrences > 1) {
            yield* Effect.logInfo(
              `${at} is DLQ ${written.id} again (${written.occurrences} times): ${verdict.tag} ${verdict.message}`,
            )
            return yield* Metric.increment(skipped("dead-lettered"))
          }
          yield* Effect.logWarning(
            `dead-lettered ${at} after ${attempts} attempt(s): ${verdict.tag} ${verdict.message}`,
          )
        }
        yield* Metric.increment(dlqTotal)
      }).pipe(Effect.retry(persistently), Effect.orDie)

    /**
     * One attempt of one event: claim, handle, deferred work, fence, close a replayed DLQ row — one
     * transaction; then the repeat of an event the DLQ holds, counted on its entry.
     */
    const attemptOne = (r: Ready, attempt: number, lock: Held | undefined, scope: Scope.Scope) =>
      withTenant(r.meta.tenantId)(
        Effect.gen(function* () {
          const c = yield* r.replayDlqId === undefined
            ? claim(def.group, [inboxRow(r)])
            : claimReplay(def.group, inboxRow(r))
          const id = r.meta.eventId
          const entry = c.deadLettered.get(id)
          const outcome: "processed" | "dead-lettered" | "duplicate" = c.claimed.has(id)
            ? "processed"
            : entry !== undefined
              ? "dead-lettered"
              : "duplicate"
          if (outcome === "processed") {
            const work = makeUnitWork(unitLocks(new Map(lock ? [[lock.key, lock]] : []), scope))
            yield* invoke(r, attempt, lock, work.forEvent(0, r.meta.tenantId))
            yield* work.flush(() => Effect.void).pipe(Effect.mapError((e) => e.error))
            if (lock) yield* fenceAll([lock])
          }
          if (r.replayDlqId !== undefined) yield* markReplayed(def.group, r.replayDlqId)
          return { outcome, entry }
        }),
      ).pipe(
        Effect.tap(({ entry }) => (entry === undefined ? Effect.void : countRepeats([entry]))),
        Effect.map(({ outcome }) => outcome),
      )

    /**
     * Waits out an `unavailable` failure when it is an outage the unit may still be held through;
     * `retry` then says to run again with nothing spent, `abandoned` to give up, `count` to treat
     * the failure as the unit's own.
     */
    const ride = (verdict: Verdict, outagesSoFar: number, stop: Stop) =>
      Effect.gen(function* () {
        if (verdict.kind !== "unavailable") return "count" as const
        const held = yield* outages.hold(verdict.dependency, verdict.message, stop)
        if (held === "abandoned") return "abandoned" as const
        return held === "up" && outagesSoFar < outageLimit ? ("retry" as const) : ("count" as const)
      })

    /**
     * One event with retries by the policy. From a chunk it may come with `error`, a failure already
     * spent as attempt 1, and with the `outages` its chunk was held through (they were under it too).
     */
    const single = (
      r: Ready,
      stop: Stop,
      startedAt: number,
      from: { readonly error?: unknown; readonly outages: number } = noOutages,
    ) =>
      Effect.gen(function* () {
        const delays = yield* Schedule.driver(schedule)
        let spent = 0
        let outagesSoFar = from.outages
        let failed = "error" in from ? { error: from.error } : undefined
        while (true) {
          const attempt = spent + 1
          const outcome: Either.Either<"processed" | "duplicate" | "dead-lettered", unknown> = failed
            ? Either.left(failed.error)
            : yield* Effect.either(
                inUnitScope((scope) =>
                  r.lockKey === undefined
                    ? attemptOne(r, attempt, undefined, scope)
                    : locks.withLock(r.lockKey, (held) => attemptOne(r, attempt, held, scope)),
                ),
              )
          failed = undefined
          if (Either.isRight(outcome)) {
            yield* Metric.increment(outcome.right === "processed" ? processed : skipped(outcome.right))
            if (outcome.right === "processed") yield* committed([r], startedAt)
            return "done" satisfies Outcome
          }
          const verdict = classify(outcome.left)
          const next = yield* ride(verdict, outagesSoFar, stop)
          if (next === "abandoned") return "abandoned" satisfies Outcome
          if (next === "retry") {
            outagesSoFar += 1
            continue
          }
          spent += 1
          if (verdict.kind === "fatal" || Either.isLeft(yield* Effect.either(delays.next(outcome.left)))) {
            yield* deadLetter(r, verdict, spent)
            return "done" satisfies Outcome
          }
          yield* Metric.increment(retries)
        }
      })

    /**
     * One transaction for a chunk that may mix tenants: as the RLS-bound role, the tenant switched
     * (transaction-locally) before each tenant's inbox rows, before each handler and before each
     * deferred work, so every statement sees only its event's tenant while partition order is kept.
     * `held` has the chunk's locks; the keys of the events that ran are fenced just before commit.
     */
    const runChunkTransaction = (
      items: ReadonlyArray<Ready>,
      held: ReadonlyMap<string, Held>,
      scope: Scope.Scope,
    ) =>
      withTenant(items[0]!.meta.tenantId)(
        Effect.gen(function* () {
          const byTenant = new Map<string, Array<Ready>>()
          for (const r of items) {
            const rows = byTenant.get(r.meta.tenantId)
            if (rows) rows.push(r)
            else byTenant.set(r.meta.tenantId, [r])
          }
          const claimed = new Set<string>()
          const deadLettered = new Map<string, string>()
          for (const [tenantId, rows] of byTenant) {
            yield* useTenant(tenantId)
            const c = yield* claim(def.group, rows.map(inboxRow))
            for (const id of c.claimed) claimed.add(id)
            for (const [id, entry] of c.deadLettered) deadLettered.set(id, entry)
          }
          const work = makeUnitWork(unitLocks(new Map(held), scope))
          const used = new Map<string, Held>()
          const ran: Array<Ready> = []
          for (const [index, r] of items.entries()) {
            // `delete`, not `has`: the same event twice in one chunk runs once.
            if (!claimed.delete(r.meta.eventId)) continue
            yield* useTenant(r.meta.tenantId)
            const lock = r.lockKey === undefined ? undefined : held.get(r.lockKey)
            yield* invoke(r, 1, lock, work.forEvent(index, r.meta.tenantId)).pipe(
              Effect.mapError((error) => new ChunkFailed({ index, error })),
            )
            if (lock) used.set(lock.key, lock)
            ran.push(r)
          }
          yield* work.flush(useTenant)
          yield* fenceAll([...used.values()])
          const repeats = items.flatMap((r) => {
            const entry = deadLettered.get(r.meta.eventId)
            return entry === undefined ? [] : [entry]
          })
          return { ran, repeats }
        }),
      )

    const runChunk = (items: ReadonlyArray<Ready>) => {
      const keys = items.flatMap((r) => (r.lockKey === undefined ? [] : [r.lockKey]))
      return inUnitScope((scope) =>
        keys.length === 0
          ? runChunkTransaction(items, new Map(), scope)
          : locks.withLocks(keys, (held) => runChunkTransaction(items, held, scope)),
      ).pipe(
        Effect.mapError((e) =>
          e instanceof ChunkFailed
            ? e
            : e instanceof DeferredFailed
              ? new ChunkFailed({ index: e.index, error: e.error })
              : new ChunkFailed({ index: -1, error: e }),
        ),
      )
    }

    const chunk = (
      items: ReadonlyArray<Ready>,
      stop: Stop,
      startedAt: number,
    ): Effect.Effect<Outcome, never, SqlClient.SqlClient> =>
      Effect.gen(function* () {
        if (items.length === 0) return "done"
        let outagesSoFar = 0
        while (true) {
          const outcome = yield* Effect.either(runChunk(items))
          if (Either.isRight(outcome)) {
            const { ran, repeats } = outcome.right
            const done = ran.length
            yield* Metric.incrementBy(processed, done)
            yield* committed(ran, startedAt)
            if (repeats.length > 0) {
              yield* countRepeats(repeats).pipe(Effect.retry(persistently), Effect.orDie)
              yield* Metric.incrementBy(skipped("dead-lettered"), repeats.length)
            }
            if (items.length > done + repeats.length)
              yield* Metric.incrementBy(skipped("duplicate"), items.length - done - repeats.length)
            return "done"
          }
          const { index, error } = outcome.left
          const next = yield* ride(classify(error), outagesSoFar, stop)
          if (next === "abandoned") return "abandoned"
          if (next === "retry") {
            outagesSoFar += 1
            continue
          }
          if (index < 0) {
            const from = { outages: outagesSoFar }
            for (const r of items)
              if ((yield* single(r, stop, startedAt, from)) === "abandoned") return "abandoned"
            return "done"
          }
          if ((yield* chunk(items.slice(0, index), stop, startedAt)) === "abandoned") return "abandoned"
          const from = { error, outages: outagesSoFar }
          if ((yield* single(items[index]!, stop, startedAt, from)) === "abandoned") return "abandoned"
          return yield* chunk(items.slice(index + 1), stop, startedAt)
        }
      })

    const processUnit = (unit: Unit, stop: Stop): Effect.Effect<Outcome, never, SqlClient.SqlClient> =>
      Effect.suspend(() => {
        const startedAt = Date.now()
        switch (unit._tag) {
          case "Skip":
            return Effect.as(
              Effect.forEach(unit.items, (s) => Metric.increment(skipped(s.reason)), { discard: true }),
              "done" as const,
            )
          case "Poison":
            return Effect.as(deadLetter(unit.item, classify(unit.item.error), 1), "done" as const)
          case "Single":
            return single(unit.item, stop, startedAt)
          case "Chunk":
            return chunk(unit.items, stop, startedAt)
        }
      })

    const process = (unit: Unit, stop: Stop): Effect.Effect<Outcome> =>
      processUnit(unit, stop).pipe(Effect.provideService(SqlClient.SqlClient, sql))

    return { process }
  })
