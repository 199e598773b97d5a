/**
 * `bun run relay [--mode wal|poll] [--slot NAME] [--batch-size N] [--linger MS]
 * [--poll-interval MS] [--standby-poll MS]` — the outbox relay alone. Retention comes from RELAY_RETENTION (default
 * "24 hours") and RELAY_RETENTION_INTERVAL (default "1 minute"); with METRICS_PORT set, its metrics
 * are served at /metrics there. Bad flags print usage and exit 2; SIGTERM drains and exits 0.
 */
import { CliConfig, Command, HelpDoc, Options, ValidationError } from "@effect/cli"
import { BunContext } from "@effect/platform-bun"
import { Config, Duration, Effect, Layer, Option, Redacted, Schema } from "effect"
import { defaultSlotFor, type RelayConfig, relayDefaults, runRelay } from "../engine/relay/index.ts"
import { MetricsServer } from "../observe/metrics-server.ts"
import { AppConfig } from "../platform/config.ts"
import { Db } from "../platform/db.ts"
import { Kafka } from "../platform/kafka.ts"
import { runMain } from "./main.ts"

const mode = Options.choice("mode", ["wal", "poll"]).pipe(
  Options.withDefault(relayDefaults.mode),
  Options.withDescription("wal: stream the replication slot; poll: visibility-safe polling"),
)
const slot = Options.text("slot").pipe(
  // PostgreSQL's rule for slot names
  Options.withSchema(Schema.String.pipe(Schema.pattern(/^[a-z0-9_]{1,63}$/))),
  Options.optional,
  Options.withDescription(
    `replication slot (WAL) and leadership lock name; default ${relayDefaults.slot}_<database>, since slot names are cluster-wide`,
  ),
)
const batchSize = Options.integer("batch-size").pipe(
  Options.withDefault(relayDefaults.batchSize),
  Options.withDescription("most events (poll) / transactions (wal) per Kafka batch"),
)
const linger = Options.integer("linger").pipe(
  Options.withSchema(Schema.Int.pipe(Schema.between(0, 10_000))),
  Options.withDefault(Duration.toMillis(relayDefaults.linger)),
  Options.withDescription("ms the first event of a batch waits for more to join it (like linger.ms)"),
)
const pollInterval = Options.integer("poll-interval").pipe(
  Options.withDefault(Duration.toMillis(relayDefaults.pollInterval)),
  Options.withDescription("poll mode: fallback interval in ms when no NOTIFY arrives"),
)
const standbyPoll = Options.integer("standby-poll").pipe(
  Options.withDefault(Duration.toMillis(relayDefaults.standbyPoll)),
  Options.withDescription("how often a standby tries to take over, in ms"),
)

const retention = Config.all({
  retention: Config.duration("RELAY_RETENTION").pipe(Config.withDefault(relayDefaults.retention)),
  retentionInterval: Config.duration("RELAY_RETENTION_INTERVAL").pipe(
    Config.withDefault(relayDefaults.retentionInterval),
  ),
})

const relay = Command.make("relay", { mode, slot, batchSize, linger, pollInterval, standbyPoll }, (flags) =>
  Effect.gen(function* () {
    const app = yield* AppConfig
    const config: RelayConfig = {
      ...relayDefaults,
      ...(yield* retention),
      mode: flags.mode,
      slot: Option.getOrElse(flags.slot, () => defaultSlotFor(Redacted.value(app.databaseUrl))),
      batchSize: flags.batchSize,
      linger: Duration.millis(flags.linger),
      pollInterval: Duration.millis(flags.pollInterval),
      standbyPoll: Duration.millis(flags.standbyPoll),
      databaseUrl: app.databaseUrl,
    }
    return yield* runRelay(config).pipe(Effect.provide(MetricsServer.layerConfig))
  }),
)

const cli = Command.run(relay, { name: "hashinsight relay", version: "0.1.0" })

runMain(
  cli(process.argv).pipe(
    Effect.catchIf(ValidationError.isValidationError, (e) =>
      Effect.sync(() => {
        if (ValidationError.isHelpRequested(e)) process.exit(0)
        console.error(HelpDoc.toAnsiText(Command.getHelp(relay, CliConfig.defaultConfig)))
        process.exit(2)
      }),
    ),
  ),
  Layer.mergeAll(Db.layerConfig, Kafka.layerConfig, BunContext.layer).pipe(
    Layer.provideMerge(AppConfig.layer),
  ),
)
