/**
 * Work a handler defers to the end of its unit, still inside the unit's transaction, so it commits
 * (or rolls back) together with the inbox rows. Deferred work is collected by key: when a chunk
 * holds fifty events of one user, `beforeCommit(\`portfolio:${user}\`, recalculate)` recalculates
 * that user once, after the last of them. Only idempotent work that reads the state as of the end of
 * the unit belongs here. Outside the consumer runtime (a direct call, a test) the work runs at once.
 */
import { Cause, Context, Data, Effect, Option } from "effect"
import { Fatal } from "./errors.ts"

export class UnitWork extends Context.Tag("hashinsight/engine/UnitWork")<
  UnitWork,
  {
    readonly defer: (
      key: string,
      item: unknown,
      run: (items: ReadonlyArray<unknown>) => Effect.Effect<void, unknown>,
    ) => Effect.Effect<void>
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

/** The registry of one transaction attempt. */
export const makeUnitWork = () => {
  const entries = new Map<string, Entry>()
  return {
    /** The service a handler of the unit's `index`-th event sees. */
    forEvent: (index: number, tenantId: string) =>
      UnitWork.of({
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
