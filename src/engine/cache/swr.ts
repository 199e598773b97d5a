/**
 * A stale-while-revalidate cache over Redis. `get(key, load, { freshMs, staleMs })`:
 * - fresh value → returned;
 * - stale value (older than freshMs, younger than freshMs + staleMs) → returned at once, and ONE
 *   background refresh per key runs — across processes, guarded by a Redis `SET NX` lock;
 * - no value → loaded once even under concurrent misses: in-process callers share one load, and
 *   other processes wait (polling) for the lock holder's value, loading themselves only if it
 *   never comes.
 * Values are stored as JSON. Redis trouble never fails a read: it degrades to calling `load`.
 */
import { Clock, Context, Deferred, Duration, Effect, FiberId, Layer, Metric, Option, Schedule } from "effect"
import { Redis, type RedisError } from "../../platform/redis.ts"
import { cacheHits, cacheMisses, cacheRefreshes, cacheStale } from "./metrics.ts"

export interface SwrOptions {
  /** How long a value is served without a refresh. */
  readonly freshMs: number
  /** How long after that it is still served (while a refresh runs); then it is gone. */
  readonly staleMs: number
}

/** Invalidate one key, several (one round trip), or every key that starts with `prefix`. */
export type InvalidateTarget = string | ReadonlyArray<string> | { readonly prefix: string }

interface Entry {
  readonly storedAt: number
  readonly value: unknown
}

const entryKey = (key: string) => `cache:v:${key}`
const lockKey = (key: string) => `cache:lock:${key}`
/** A lock outlives any sane load; a holder that dies frees it by expiry. */
const lockTtlMs = 30_000
/** How long a process that lost the load race waits for the winner's value. */
const missWait = Duration.seconds(5)
const missPoll = Duration.millis(20)
const scanBatch = 500

const releaseScript = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`

const isKeys = (target: InvalidateTarget): target is ReadonlyArray<string> => Array.isArray(target)

const globEscape = (s: string) => s.replace(/[*?[\]\\]/g, "\\$&")

export class Cache extends Context.Tag("hashinsight/engine/Cache")<
  Cache,
  {
    readonly get: <A, E, R>(
      key: string,
      load: Effect.Effect<A, E, R>,
      options: SwrOptions,
    ) => Effect.Effect<A, E, R>
    /** Returns how many keys were removed; fails rather than leave a value it was asked to drop. */
    readonly invalidate: (target: InvalidateTarget) => Effect.Effect<number, RedisError>
  }
>() {
  static readonly make = Effect.gen(function* () {
    const redis = yield* Redis
    // Background refreshes live as long as the cache: closing it interrupts them.
    const scope = yield* Effect.scope
    const inFlight = new Map<string, Deferred.Deferred<unknown, unknown>>()

    const read = (key: string) =>
      redis
        .use("cache.get", (c) => c.get(entryKey(key)))
        .pipe(
          Effect.map((raw) => (raw === null ? Option.none() : Option.some(JSON.parse(raw) as Entry))),
          Effect.tapError((e) => Effect.logWarning(`cache read of ${key} failed; loading instead`, e)),
          Effect.orElseSucceed(() => Option.none<Entry>()),
        )

    const write = (key: string, value: unknown, options: SwrOptions) =>
      Effect.gen(function* () {
        const entry: Entry = { storedAt: yield* Clock.currentTimeMillis, value }
        const ttl = Math.max(1, Math.ceil(options.freshMs + options.staleMs))
        yield* redis.use("cache.set", (c) => c.set(entryKey(key), JSON.stringify(entry), "PX", ttl))
      }).pipe(Effect.catchAll((e) => Effect.logWarning(`cache write of ${key} failed`, e)))

    /** Some(token) when this caller now holds the key's lock; None when another does (or Redis is down). */
    const tryLock = (key: string) => {
      const token = crypto.randomUUID()
      return redis
        .use("cache.lock", (c) => c.set(lockKey(key), token, "PX", lockTtlMs, "NX"))
        .pipe(
          Effect.map((ok) => (ok === "OK" ? Option.some(token) : Option.none())),
          Effect.orElseSucceed(() => Option.none<string>()),
        )
    }

    const unlock = (key: string, token: string) =>
      redis.use("cache.unlock", (c) => c.eval(releaseScript, 1, lockKey(key), token)).pipe(Effect.ignore)

    const loadAndStore = <A, E, R>(key: string, load: Effect.Effect<A, E, R>, options: SwrOptions) =>
      Effect.tap(load, (value) => write(key, value, options))

    const isFresh = (key: string, options: SwrOptions) =>
      Effect.gen(function* () {
        const cached = yield* read(key)
        const now = yield* Clock.currentTimeMillis
        return Option.isSome(cached) && now - cached.value.storedAt < options.freshMs
      })

    const refreshInBackground = <A, E, R>(key: string, load: Effect.Effect<A, E, R>, options: SwrOptions) =>
      Effect.gen(function* () {
        const token = yield* tryLock(key)
        if (Option.isNone(token)) return
        // A refresh that finished just before we took the lock already did the work.
        if (yield* isFresh(key, options)) return yield* unlock(key, token.value)
        yield* Metric.increment(cacheRefreshes)
        yield* loadAndStore(key, load, options).pipe(
          Effect.catchAllCause((cause) => Effect.logWarning(`cache refresh of ${key} failed`, cause)),
          Effect.ensuring(unlock(key, token.value)),
        )
      }).pipe(Effect.forkIn(scope))

    /**
     * Another process holds the lock: wait for its value. If its lock goes away without a value (its
     * load failed or it died) or the wait runs out, load here.
     */
    const awaitOtherLoader = <A, E, R>(key: string, load: Effect.Effect<A, E, R>, options: SwrOptions) => {
      const poll = Effect.gen(function* () {
        const cached = yield* read(key)
        if (Option.isSome(cached)) return Option.some(cached.value.value as A)
        const locked = yield* redis
          .use("cache.locked", (c) => c.exists(lockKey(key)))
          .pipe(Effect.orElseSucceed(() => 0))
        // The holder may have stored its value and unlocked between the two reads: look once more.
        if (locked === 0) return Option.map(yield* read(key), (entry) => entry.value as A)
        return yield* Effect.fail("still loading elsewhere" as const)
      })
      return poll.pipe(
        Effect.retry(Schedule.spaced(missPoll).pipe(Schedule.upTo(missWait))),
        Effect.orElseSucceed(() => Option.none<A>()),
        Effect.flatMap(
          Option.match({
            onSome: (value) => Effect.succeed(value),
            onNone: () => loadAndStore(key, load, options),
          }),
        ),
      )
    }

    const loadOnMiss = <A, E, R>(key: string, load: Effect.Effect<A, E, R>, options: SwrOptions) =>
      Effect.gen(function* () {
        const token = yield* tryLock(key)
        if (Option.isNone(token)) return yield* awaitOtherLoader(key, load, options)
        return yield* loadAndStore(key, load, options).pipe(Effect.ensuring(unlock(key, token.value)))
      })

    /** One load per key per process at a time; concurrent callers share its outcome. */
    const singleFlight = <A, E, R>(key: string, run: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
      Effect.suspend(() => {
        const running = inFlight.get(key)
        if (running) return Deferred.await(running as Deferred.Deferred<A, E>)
        const done = Deferred.unsafeMake<A, E>(FiberId.none)
        inFlight.set(key, done as Deferred.Deferred<unknown, unknown>)
        return run.pipe(
          Effect.onExit((exit) =>
            Effect.zipRight(
              Effect.sync(() => inFlight.delete(key)),
              Deferred.done(done, exit),
            ),
          ),
        )
      })

    const get = <A, E, R>(key: string, load: Effect.Effect<A, E, R>, options: SwrOptions) =>
      Effect.gen(function* () {
        const cached = yield* read(key)
        if (Option.isSome(cached)) {
          const age = (yield* Clock.currentTimeMillis) - cached.value.storedAt
          if (age < options.freshMs) {
            yield* Metric.increment(cacheHits)
            return cached.value.value as A
          }
          yield* Metric.increment(cacheStale)
          yield* refreshInBackground(key, load, options)
          return cached.value.value as A
        }
        yield* Metric.increment(cacheMisses)
        return yield* singleFlight(key, loadOnMiss(key, load, options))
      }).pipe(Effect.withSpan("Cache.get", { attributes: { key } }))

    const invalidate = (target: InvalidateTarget) => {
      if (typeof target === "string" || isKeys(target)) {
        const keys = typeof target === "string" ? [target] : target
        return keys.length === 0
          ? Effect.succeed(0)
          : redis.use("cache.del", (c) => c.del(...keys.map(entryKey)))
      }
      return redis.use("cache.invalidatePrefix", async (c) => {
        let removed = 0
        const stream = c.scanStream({
          match: `${globEscape(entryKey(target.prefix))}*`,
          count: scanBatch,
        })
        for await (const keys of stream as AsyncIterable<Array<string>>)
          if (keys.length > 0) removed += await c.del(...keys)
        return removed
      })
    }

    return Cache.of({ get, invalidate })
  })

  static readonly layer = Layer.scoped(Cache, Cache.make)
}
