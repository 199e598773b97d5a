/**
 * Redis locks with fencing. `SET key token NX PX ttl` takes the lock and, in the same script, `INCR
 * fence:{key}` hands out a monotonic fencing token. The lock is renewed while its holder works,
 * released only by its owner's token, and expires by itself if the process dies. A holder whose lock
 * expired (a long pause) may still reach its commit: `fence` makes the database reject that write,
 * because a newer holder has already recorded a higher token in `lock_fences`.
 */
import { SqlClient } from "@effect/sql"
import { Context, Duration, Effect, Layer, Schedule } from "effect"
import { Redis } from "../../platform/redis.ts"
import { FencingRejected, LockContended } from "./errors.ts"

const acquireScript = `
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return redis.call('INCR', KEYS[2])
end
return 0`

const releaseScript = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
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

export const defaultLockOptions: LockOptions = {
  ttl: Duration.seconds(60),
  wait: Duration.seconds(10),
  renewEvery: Duration.seconds(20),
}

export interface Held {
  readonly key: string
  readonly token: number
}

export const fenceKey = (key: string) => `fence:{${key}}`

export class Locks extends Context.Tag("Locks")<
  Locks,
  {
    /** Runs `use` while holding `key`; the fencing token is handed to it. */
    readonly withLock: <A, E, R>(
      key: string,
      use: (held: Held) => Effect.Effect<A, E, R>,
    ) => Effect.Effect<A, E | LockContended | import("../../platform/redis.ts").RedisError, R>
  }
>() {
  static readonly make = (options: LockOptions) =>
    Effect.gen(function* () {
      const redis = yield* Redis
      const ttlMs = Math.max(1, Math.round(Duration.toMillis(options.ttl)))

      const tryAcquire = (key: string, token: string) =>
        redis
          .use("lock.acquire", (c) => c.eval(acquireScript, 2, key, fenceKey(key), token, ttlMs))
          .pipe(
            Effect.flatMap((fence) =>
              Number(fence) > 0
                ? Effect.succeed(Number(fence))
                : Effect.fail(new LockContended({ lockKey: key })),
            ),
          )

      const acquire = (key: string, token: string) =>
        tryAcquire(key, token).pipe(
          Effect.retry({
            schedule: Schedule.spaced(Duration.millis(20)).pipe(
              Schedule.jittered,
              Schedule.upTo(options.wait),
            ),
            while: (e) => e._tag === "LockContended",
          }),
        )

      const release = (key: string, token: string) =>
        redis
          .use("lock.release", (c) => c.eval(releaseScript, 1, key, token))
          .pipe(
            Effect.timeout(Duration.seconds(2)),
            // An unreleased lock still expires after its ttl; nothing else to do.
            Effect.ignore,
          )

      const renew = (key: string, token: string) =>
        redis
          .use("lock.renew", (c) => c.eval(renewScript, 1, key, token, ttlMs))
          .pipe(
            Effect.flatMap((ok) =>
              Number(ok) === 1
                ? Effect.void
                : Effect.logWarning(`lock ${key} was lost while held; fencing will reject a late write`),
            ),
            Effect.ignore,
          )

      const withLock = <A, E, R>(key: string, use: (held: Held) => Effect.Effect<A, E, R>) => {
        const token = crypto.randomUUID()
        return Effect.acquireUseRelease(
          acquire(key, token),
          (fence) =>
            Effect.gen(function* () {
              yield* Effect.forkScoped(
                renew(key, token).pipe(
                  Effect.repeat(Schedule.spaced(options.renewEvery)),
                  Effect.delay(options.renewEvery),
                ),
              )
              return yield* use({ key, token: fence })
            }).pipe(Effect.scoped),
          () => release(key, token),
        ).pipe(Effect.withSpan("Locks.withLock", { attributes: { key } }))
      }

      return Locks.of({ withLock })
    })

  static readonly layerWith = (options: LockOptions) => Layer.effect(Locks, Locks.make(options))
  static readonly layer = Locks.layerWith(defaultLockOptions)
}

/**
 * Records `held.token` as the newest for its key, in the caller's transaction. Rejected when the
 * database has already seen a newer token: this holder's lock expired and someone else wrote since.
 * The row stays locked until commit, so holders are also serialised at the database.
 */
export const fence = Effect.fn("Locks.fence")(function* (held: Held) {
  const sql = yield* SqlClient.SqlClient
  const rows = yield* sql`
    INSERT INTO lock_fences (lock_key, token) VALUES (${held.key}, ${held.token})
    ON CONFLICT (lock_key) DO UPDATE SET token = excluded.token, updated_at = now()
    WHERE lock_fences.token <= excluded.token
    RETURNING token`
  if (rows.length === 0) return yield* new FencingRejected({ lockKey: held.key, token: held.token })
})
