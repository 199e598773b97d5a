/**
 * Redis locks with fencing. `SET key token NX PX ttl` takes the lock and, in the same script, `INCR
 * fence:{key}` hands out a monotonic fencing token (clock-seeded when the counter is missing). The lock is renewed while its holder works,
 * released only by its owner's token, and expires by itself if the process dies. A holder whose lock
 * expired (a long pause) may still reach its commit: `fence` makes the database reject that write,
 * because a newer holder has already recorded a higher token in `lock_fences`. A rejection also
 * brings a counter that fell behind the database (Redis data loss) back up: see `catchUp`.
 */
import { SqlClient } from "@effect/sql"
import { Context, Duration, Effect, Layer, Schedule, type Scope } from "effect"
import { Redis, type RedisError } from "../../platform/redis.ts"
import { FencingRejected, LockContended } from "./errors.ts"

/**
 * A counter that is missing (first use, or Redis lost its data: a restart without persistence, a
 * failover) starts from the server clock in microseconds, so its tokens stay above every token it
 * handed out before — which the database may still hold in `lock_fences` — as long as a key saw
 * fewer than one acquisition per microsecond. (Starting again from 1 would have every holder's
 * writes fenced off until the counter caught up.) 1.8e15 today: exact in a double until ~2255.
 */
const acquireScript = `
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  if redis.call('EXISTS', KEYS[2]) == 0 then
    local now = redis.call('TIME')
    redis.call('SET', KEYS[2], now[1] .. string.format('%06d', tonumber(now[2])))
  end
  return redis.call('INCR', KEYS[2])
end
return 0`

const releaseScript = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`

/** Raises a fence counter to at least ARGV[1] (never lowers it); 1 when it had to. */
const catchUpScript = `
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if current < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], ARGV[1])
  return 1
end
return 0`

const renewScript = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0`

export interface LockOptions {
  readonly ttl: Duration.Duration
  /** How long to keep trying before reporting contention (retryable by the consumer's policy). */
  readonly wait: Duration.Duration
  readonly renewEvery: Duration.Duration
}

/**
 * A ttl well inside one `wait`: the lock of a holder that died (SIGKILL, a lost host) is free again
 * before the member that took over its partitions has spent one attempt on it, instead of costing
 * that key's events their retry budget. A live holder renews three times per ttl, so only a process
 * that stalls for most of a ttl loses its lock — and fencing refuses whatever it then commits.
 */
export const defaultLockOptions: LockOptions = {
  ttl: Duration.seconds(6),
  wait: Duration.seconds(10),
  renewEvery: Duration.seconds(2),
}

export interface Held {
  readonly key: string
  readonly token: number
}

export const fenceKey = (key: string) => `fence:{${key}}`

export class Locks extends Context.Tag("hashinsight/engine/Locks")<
  Locks,
  {
    /** Runs `use` while holding `key`; the fencing token is handed to it. */
    readonly withLock: <A, E, R>(
      key: string,
      use: (held: Held) => Effect.Effect<A, E, R>,
    ) => Effect.Effect<A, E | LockContended | RedisError, R>
    /**
     * Runs `use` while holding every key at once, each with its fencing token. The keys are taken
     * all or nothing — a holder never waits while holding some of them — so two holders of
     * overlapping sets cannot deadlock.
     */
    readonly withLocks: <A, E, R>(
      keys: ReadonlyArray<string>,
      use: (held: ReadonlyMap<string, Held>) => Effect.Effect<A, E, R>,
    ) => Effect.Effect<A, E | LockContended | RedisError, R>
    /**
     * Takes every key at once, as `withLocks` does, and holds them until the scope closes: for a
     * unit that must keep them until its transaction is over (`withUnitLocks`).
     */
    readonly hold: (
      keys: ReadonlyArray<string>,
    ) => Effect.Effect<ReadonlyMap<string, Held>, LockContended | RedisError, Scope.Scope>
    /** What `withLocks` does on a fence rejection of one of its keys, for locks taken by `hold`. */
    readonly catchUp: (error: FencingRejected) => Effect.Effect<void>
  }
>() {
  /** Needs a scope: one fiber renews every lock set held through this service. */
  static readonly make = (options: LockOptions) =>
    Effect.gen(function* () {
      const redis = yield* Redis
      const ttlMs = Math.max(1, Math.round(Duration.toMillis(options.ttl)))

      /**
       * One script call per key, sent as one pipeline: a set costs one round trip, and no fiber is
       * forked per key (under Bun each fork/join hop costs about a millisecond).
       */
      const perKey = (
        op: string,
        keys: ReadonlyArray<string>,
        args: (key: string) => Array<string | number>,
      ) =>
        redis.use(op, async (c) => {
          const pipeline = c.pipeline()
          for (const key of keys) pipeline.eval(...(args(key) as [string, number, ...Array<string | number>]))
          const replies = (await pipeline.exec()) ?? []
          return keys.map((_, i) => {
            const [error, reply] = replies[i] ?? [new Error("no reply"), null]
            if (error) throw error
            return Number(reply)
          })
        })

      const release = (keys: ReadonlyArray<string>, token: string) =>
        perKey("lock.release", keys, (key) => [releaseScript, 1, key, token]).pipe(
          // Run as withLocks's release and inside its acquire, both uninterruptible: without this the
          // timeout could not cut short a release that a hung Redis never answers.
          Effect.interruptible,
          Effect.timeout(Duration.seconds(2)),
          // An unreleased lock still expires after its ttl; nothing else to do.
          Effect.ignore,
        )

      const tryAcquire = (keys: ReadonlyArray<string>, token: string) =>
        perKey("lock.acquire", keys, (key) => [acquireScript, 2, key, fenceKey(key), token, ttlMs]).pipe(
          // Some keys may have been taken before Redis failed: give them back rather than wait for the ttl.
          Effect.tapError(() => release(keys, token)),
          Effect.flatMap((fences) => {
            const contended = keys.find((_, i) => !(fences[i]! > 0))
            if (contended === undefined)
              return Effect.succeed(new Map(keys.map((key, i) => [key, { key, token: fences[i]! }])))
            const taken = keys.filter((_, i) => fences[i]! > 0)
            return Effect.zipRight(
              release(taken, token),
              Effect.fail(new LockContended({ lockKey: contended })),
            )
          }),
        )

      const acquire = (keys: ReadonlyArray<string>, token: string) =>
        tryAcquire(keys, token).pipe(
          Effect.retry({
            schedule: Schedule.spaced(Duration.millis(20)).pipe(
              Schedule.jittered,
              Schedule.upTo(options.wait),
            ),
            while: (e) => e._tag === "LockContended",
          }),
        )

      // Every held set, renewed by one loop: each is renewed within `renewEvery` of being taken.
      // The sets are read at each round (suspended): read once, the loop renewed nothing ever.
      const held = new Map<string, ReadonlyArray<string>>()
      const renewAll = Effect.suspend(() =>
        Effect.forEach(
          Array.from(held),
          ([token, keys]) =>
            perKey("lock.renew", keys, (key) => [renewScript, 1, key, token, ttlMs]).pipe(
              Effect.flatMap((renewed) =>
                Effect.forEach(keys, (key, i) =>
                  renewed[i] === 1 || !held.has(token)
                    ? Effect.void
                    : Effect.logWarning(`lock ${key} was lost while held; fencing will reject a late write`),
                ),
              ),
              Effect.ignore,
            ),
          { discard: true },
        ),
      )
      yield* Effect.forkScoped(renewAll.pipe(Effect.delay(options.renewEvery), Effect.forever))

      /**
       * A fence rejection means the database has seen a newer token than this counter hands out:
       * the holder's lock expired meanwhile (the counter is already past it; nothing changes), or
       * Redis lost the counter's latest value. Raising the counter to the stored token makes the
       * next acquisition's token pass, so the retry succeeds instead of every later holder of the
       * key being fenced off too. Best effort: failing to raise it leaves the next try to do it.
       */
      const catchUp = (error: FencingRejected) =>
        perKey("lock.catch-up", [fenceKey(error.lockKey)], (key) => [
          catchUpScript,
          1,
          key,
          String(error.newest),
        ]).pipe(
          Effect.flatMap(([raised]) =>
            raised === 1
              ? Effect.logWarning(
                  `fence counter of ${error.lockKey} was behind the database (${error.token} < ${error.newest}); raised to ${error.newest}`,
                )
              : Effect.void,
          ),
          Effect.timeout(Duration.seconds(2)),
          Effect.ignore,
        )

      const take = (sorted: ReadonlyArray<string>, token: string) =>
        Effect.tap(acquire(sorted, token), () => Effect.sync(() => held.set(token, sorted)))

      const giveBack = (sorted: ReadonlyArray<string>, token: string) =>
        Effect.zipRight(
          Effect.sync(() => held.delete(token)),
          release(sorted, token),
        )

      const withLocks = <A, E, R>(
        keys: ReadonlyArray<string>,
        use: (held: ReadonlyMap<string, Held>) => Effect.Effect<A, E, R>,
      ) => {
        const sorted = Array.from(new Set(keys)).sort()
        const token = crypto.randomUUID()
        return Effect.acquireUseRelease(
          take(sorted, token),
          (locks) =>
            Effect.tapError(use(locks), (error) =>
              error instanceof FencingRejected && locks.has(error.lockKey) ? catchUp(error) : Effect.void,
            ),
          () => giveBack(sorted, token),
        ).pipe(Effect.withSpan("Locks.withLocks", { attributes: { keys: sorted.length } }))
      }

      const hold = (keys: ReadonlyArray<string>) => {
        const sorted = Array.from(new Set(keys)).sort()
        const token = crypto.randomUUID()
        return Effect.acquireRelease(take(sorted, token), () => giveBack(sorted, token)).pipe(
          Effect.withSpan("Locks.hold", { attributes: { keys: sorted.length } }),
        )
      }

      const withLock = <A, E, R>(key: string, use: (held: Held) => Effect.Effect<A, E, R>) =>
        withLocks([key], (held) => use(held.get(key)!))

      return Locks.of({ withLock, withLocks, hold, catchUp })
    })

  static readonly layerWith = (options: LockOptions) => Layer.scoped(Locks, Locks.make(options))
  static readonly layer = Locks.layerWith(defaultLockOptions)
}

/**
 * Records each `held.token` as the newest for its key, in the caller's transaction (one statement,
 * rows in key order so two transactions lock them in the same order). Rejected when the database
 * has already seen a newer token for a key: this holder's lock expired and someone else wrote since.
 * The rows stay locked until commit, so holders are also serialised at the database.
 */
export const fenceAll = Effect.fn("Locks.fence")(function* (held: ReadonlyArray<Held>) {
  if (held.length === 0) return
  const sql = yield* SqlClient.SqlClient
  const sorted = [...held].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))
  const rows = yield* sql<{ lock_key: string }>`
    INSERT INTO lock_fences ${sql.insert(sorted.map((h) => ({ lock_key: h.key, token: h.token })))}
    ON CONFLICT (lock_key) DO UPDATE SET token = excluded.token, updated_at = now()
    WHERE lock_fences.token <= excluded.token
    RETURNING lock_key`
  if (rows.length === sorted.length) return
  const written = new Set(rows.map((r) => r.lock_key))
  const stale = sorted.find((h) => !written.has(h.key))!
  const [stored] = yield* sql<{ token: string }>`
    SELECT token::text AS token FROM lock_fences WHERE lock_key = ${stale.key}`
  return yield* new FencingRejected({
    lockKey: stale.key,
    token: stale.token,
    newest: Number(stored?.token ?? stale.token),
  })
})

export const fence = (held: Held) => fenceAll([held])
