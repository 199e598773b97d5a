/**
 * All configuration, read in one place. Secrets (connection URLs may carry passwords) are
 * `Redacted`, so logging the config never leaks them.
 */
import { Config, Context, Effect, Layer, Logger, LogLevel, Redacted } from "effect"

/** See `kafkaFetchMaxWaitMs`. */
export const defaultFetchMaxWaitMs = 20

export const appConfig = Config.all({
  databaseUrl: Config.redacted("DATABASE_URL"),
  redisUrl: Config.redacted("REDIS_URL"),
  kafkaBrokers: Config.array(Config.nonEmptyString(), "KAFKA_BROKERS"),
  port: Config.port("PORT").pipe(Config.withDefault(5000)),
  /** The address every server binds (API, `/metrics`): loopback locally, `0.0.0.0` in a container. */
  host: Config.nonEmptyString("HOST").pipe(Config.withDefault("127.0.0.1")),
  logLevel: Config.logLevel("LOG_LEVEL").pipe(Config.withDefault(LogLevel.Info)),
  dbPoolMax: Config.integer("DB_POOL_MAX").pipe(Config.withDefault(10)),
  kafkaClientId: Config.string("KAFKA_CLIENT_ID").pipe(Config.withDefault("hashinsight")),
  /**
   * Longest a consumer's fetch waits for data. A real broker answers a waiting fetch as soon as data
   * arrives (500 suits it: fewer idle requests); the embedded mock always waits the whole time, so
   * its default is short: this wait is what an event arriving at an idle consumer may sit for.
   */
  kafkaFetchMaxWaitMs: Config.integer("KAFKA_FETCH_MAX_WAIT_MS").pipe(
    Config.validate({ message: "must be between 1 and 60000", validation: (n) => n >= 1 && n <= 60_000 }),
    Config.withDefault(defaultFetchMaxWaitMs),
  ),
  /** Where a relay or consumer process serves `/metrics`; none when unset. */
  metricsPort: Config.option(Config.port("METRICS_PORT")),
})

export type AppConfigShape = Config.Config.Success<typeof appConfig>

export class AppConfig extends Context.Tag("hashinsight/platform/AppConfig")<AppConfig, AppConfigShape>() {
  static readonly layer = Layer.effect(AppConfig, appConfig)
}

/** A printable view of the config for start-up logs: secrets stay redacted. */
export const describeConfig = (c: AppConfigShape) => ({
  databaseUrl: redactUrl(Redacted.value(c.databaseUrl)),
  redisUrl: redactUrl(Redacted.value(c.redisUrl)),
  kafkaBrokers: c.kafkaBrokers.join(","),
  host: c.host,
  port: c.port,
  logLevel: c.logLevel.label,
})

const redactUrl = (url: string): string => {
  try {
    const u = new URL(url)
    if (u.password) u.password = "***"
    return u.toString()
  } catch {
    return "<unparseable url>"
  }
}

/** Applies LOG_LEVEL to every effect run under it. */
export const withConfiguredLogLevel = <A, E, R>(self: Effect.Effect<A, E, R>) =>
  Effect.flatMap(AppConfig, (c) => self.pipe(Logger.withMinimumLogLevel(c.logLevel)))
