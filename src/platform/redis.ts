/** Redis through ioredis: one scoped connection for the process, closed on scope exit. */
import { Context, Data, Duration, Effect, Layer, Redacted } from "effect"
import IORedis from "ioredis"
import { AppConfig } from "./config.ts"

export class RedisError extends Data.TaggedError("RedisError")<{
  readonly op: string
  readonly cause: unknown
}> {
  override get message() {
    return `redis ${this.op}: ${this.cause instanceof Error ? this.cause.message : String(this.cause)}`
  }
}

export class Redis extends Context.Tag("hashinsight/platform/Redis")<
  Redis,
  {
    readonly client: IORedis
    /** Runs one ioredis call as an Effect with a typed error. */
    readonly use: <A>(op: string, f: (client: IORedis) => Promise<A>) => Effect.Effect<A, RedisError>
    /** Cheap liveness probe for health checks. */
    readonly probe: Effect.Effect<void, RedisError>
  }
>() {
  static readonly make = (url: string) =>
    Effect.gen(function* () {
      const client = yield* Effect.acquireRelease(
        Effect.sync(
          () =>
            new IORedis(url, {
              lazyConnect: false,
              maxRetriesPerRequest: 2,
              enableOfflineQueue: true,
              connectTimeout: 2000,
              retryStrategy: (times) => Math.min(times * 100, 2000),
            }),
        ),
        (c) =>
          Effect.promise(() => c.quit().catch(() => c.disconnect())).pipe(
            // A release runs uninterruptibly: without this the timeout could not cut short a QUIT
            // that a hung server never answers, and shutting down would wait forever.
            Effect.interruptible,
            Effect.timeout(Duration.seconds(2)),
            Effect.orElse(() => Effect.sync(() => c.disconnect())),
          ),
      )
      // ioredis emits 'error' on every failed reconnect; without a listener Node would crash.
      client.on("error", () => {})
      const use = <A>(op: string, f: (c: IORedis) => Promise<A>) =>
        Effect.tryPromise({ try: () => f(client), catch: (cause) => new RedisError({ op, cause }) })
      const probe = use("ping", (c) => c.ping()).pipe(
        Effect.timeoutFail({
          duration: Duration.seconds(2),
          onTimeout: () => new RedisError({ op: "ping", cause: "timeout" }),
        }),
        Effect.asVoid,
      )
      return Redis.of({ client, use, probe })
    })

  static readonly layerConfig = Layer.scoped(
    Redis,
    Effect.flatMap(AppConfig, (c) => Redis.make(Redacted.value(c.redisUrl))),
  )
}
