/**
 * Work a handler defers to the end of its unit, still inside the unit's transaction, so it commits
 * (or rolls back) together with the inbox rows. Deferred work is collected by key: when a chunk
 * holds fifty events of one user, `beforeCommit(\`portfolio:${user}\`, recalculate)` recalculates
 * that user once, after the last of them. Only idempotent work that reads the state as of the end of
 * the unit belongs here. Outside the consumer runtime (a direct call, a test) the work runs at once.
 */
import { Cause, Context, Data, Effect, Option } from "effect"
import type { RedisError } from "../../platform/redis.ts"
import { Fatal, FencingRejected, type LockContended } from "./errors.ts"
import { type Held, Locks } from "./lock.ts"

/** Every key held until the unit's transaction is over: the unit's own, or taken for it. */
export type UnitLocks = (
  keys: ReadonlyArray<string>,
) => Effect.Effect<ReadonlyMap<string, Held>, LockContended | RedisError>

export class UnitWork extends Context.Tag("hashinsight/engine/UnitWork")<
  UnitWork,
  {
    readonly defer: (
      key: string,
      item: unknown,
      run: (items: ReadonlyArray<unknown>) => Effect.Effect<void, unknown>,
    ) => Effect.Effect<void>
    readonly lock: UnitLocks
  }
>() {}

/**
 * Collects `item` under `key`; at the end of the unit the first registrant's `run` gets every item
 * collected under that key, in registration order — e.g. all users of a tenant recalculated in one
 * round of statements.
 */
export const beforeCommitBatch = <A, E, R>(
  key: string,
  item: A,
  run: (items: ReadonlyArray<A>) => Effect.Effect<void, E, R>,
): Effect.Effect<void, E, R> =>
  Effect.flatMap(Effect.serviceOption(UnitWork), (unit) =>
    Option.isNone(unit)
      ? run([item])
      : Effect.flatMap(Effect.context<R>(), (context) =>
          unit.value.defer(key, item, (items) => Effect.provide(run(items as ReadonlyArray<A>), context)),
        ),
  )

/** Runs `work` once per key at the end of the unit, however many of its events asked for it. */
export const beforeCommit = <E, R>(key: string, work: Effect.Effect<void, E, R>): Effect.Effect<void, E, R> =>
  beforeCommitBatch(key, undefined, () => work)

/**
 * Runs `use` holding every key until the end of the unit: keys the unit already holds (its events'
 * lock keys) with its own tokens, the rest taken at once, all or nothing, and given back only once
 * the unit's transaction is over. A lock given back before commit would let the key's next holder
 * wait on the rows written under it while this unit waits on a lock that holder has: a deadlock
 * only the lock's wait breaks. A fence rejection of one of them raises its counter, as `withLocks`
 * does. Outside the consumer runtime, `Locks.withLocks`.
 */
export const withUnitLocks = <A, E, R>(
  keys: ReadonlyArray<string>,
  use: (held: ReadonlyMap<string, Held>) => Effect.Effect<A, E, R>,
): Effect.Effect<A, E | LockContended | RedisError, R | Locks> =>
  Effect.flatMap(Effect.serviceOption(UnitWork), (unit) =>
    Option.isNone(unit)
      ? Effect.flatMap(Locks, (locks) => locks.withLocks(keys, use))
      : Effect.flatMap(unit.value.lock(keys), (held) =>
          Effect.tapError(use(held), (error) =>
            error instanceof FencingRejected && held.has(error.lockKey)
              ? Effect.flatMap(Locks, (locks) => locks.catchUp(error))
              : Effect.void,
          ),
        ),
  )

/** Deferred work failed; `index` is the event (in its unit) that registered its key first. */
export class DeferredFailed extends Data.TaggedError("DeferredFailed")<{
  readonly index: number
  readonly error: unknown
}> {}

interface Entry {
  readonly index: number
  readonly tenantId: string
  readonly items: Array<unknown>
  readonly run: (items: ReadonlyArray<unknown>) => Effect.Effect<void, unknown>
}

/** The registry of one transaction attempt; `lock` takes keys for the unit (see `withUnitLocks`). */
export const makeUnitWork = (lock: UnitLocks) => {
  const entries = new Map<string, Entry>()
  return {
    /** The service a handler of the unit's `index`-th event sees. */
    forEvent: (index: number, tenantId: string) =>
      UnitWork.of({
        lock,
        defer: (key, item, run) =>
          Effect.sync(() => {
            const entry = entries.get(key)
            if (entry) entry.items.push(item)
            else entries.set(key, { index, tenantId, items: [item], run })
          }),
      }),
    /**
     * Runs the deferred work in registration order, each under its event's tenant (`useTenant`);
     * work deferred while flushing runs too (a Map iterates entries added during iteration).
     */
    flush: <R>(useTenant: (tenantId: string) => Effect.Effect<void, unknown, R>) =>
      Effect.gen(function* () {
        for (const entry of entries.values())
          yield* Effect.zipRight(useTenant(entry.tenantId), entry.run(entry.items)).pipe(
            // As for handlers: a defect is a bug, and retrying a bug won't help.
            Effect.catchAllDefect((defect) =>
              Effect.fail(new Fatal({ message: `deferred work died: ${Cause.pretty(Cause.die(defect))}` })),
            ),
            Effect.mapError((error) => new DeferredFailed({ index: entry.index, error })),
          )
      }),
  }
}
