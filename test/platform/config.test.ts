import { describe, expect } from "bun:test"
import { ConfigProvider, Effect, Layer, Option } from "effect"
import { AppConfig, describeConfig } from "../../src/platform/config.ts"
import { effectTest } from "../support/effect.ts"

const withEnv = (env: Record<string, string>) =>
  Layer.setConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env))))

describe("AppConfig", () => {
  effectTest("reads the contract's env vars, with defaults, and never prints a password", () =>
    Effect.gen(function* () {
      const config = yield* AppConfig.pipe(
        Effect.provide(AppConfig.layer),
        Effect.provide(
          withEnv({
            DATABASE_URL: "postgres://app:s3cret@db.example:5432/hashinsight",
            REDIS_URL: "redis://:hunter2@cache.example:6379",
            KAFKA_BROKERS: "k1:9092,k2:9092",
          }),
        ),
      )
      const shown = describeConfig(config)
      expect(shown).toEqual({
        databaseUrl: "postgres://app:***@db.example:5432/hashinsight",
        redisUrl: "redis://:***@cache.example:6379",
        kafkaBrokers: "k1:9092,k2:9092",
        host: "127.0.0.1",
        port: 5000,
        logLevel: "INFO",
      })
      expect(config.kafkaFetchMaxWaitMs).toBe(20)
      expect(config.metricsPort).toEqual(Option.none())
      const inContainer = yield* AppConfig.pipe(
        Effect.provide(AppConfig.layer),
        Effect.provide(
          withEnv({
            DATABASE_URL: "postgres://x/y",
            REDIS_URL: "redis://x",
            KAFKA_BROKERS: "k:1",
            HOST: "0.0.0.0",
          }),
        ),
      )
      expect(inContainer.host).toBe("0.0.0.0")
      expect(JSON.stringify(config)).not.toContain("s3cret")
      expect(String(config.databaseUrl)).not.toContain("s3cret")
    }),
  )

  effectTest("a missing or malformed variable is a config error naming it", () =>
    Effect.gen(function* () {
      const failure = (env: Record<string, string>) =>
        AppConfig.pipe(
          Effect.provide(AppConfig.layer),
          Effect.provide(withEnv(env)),
          Effect.flip,
          Effect.map(String),
        )
      const valid = { DATABASE_URL: "postgres://x/y", REDIS_URL: "redis://x", KAFKA_BROKERS: "k:1" }
      expect(yield* failure({ REDIS_URL: "redis://x", KAFKA_BROKERS: "k:1" })).toContain("DATABASE_URL")
      expect(yield* failure({ ...valid, PORT: "http" })).toContain("PORT")
      expect(yield* failure({ ...valid, KAFKA_FETCH_MAX_WAIT_MS: "0" })).toContain("KAFKA_FETCH_MAX_WAIT_MS")
      expect(yield* failure({ ...valid, METRICS_PORT: "metrics" })).toContain("METRICS_PORT")
    }),
  )
})
