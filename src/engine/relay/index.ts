/**
 * The outbox relay as an Effect, for `bun run relay` and for `bun run services` in-process: wait
 * for leadership (standby until then), publish in the configured mode, run retention. A lost
 * session steps down and starts over after a backoff; a fatal error ends the relay. Interrupting
 * it drains: the in-flight batch finishes and is confirmed, then connections close.
 */
import type { SqlClient } from "@effect/sql"
import type { PgClient } from "@effect/sql-pg"
import { Effect, Schedule } from "effect"
import { Kafka } from "../../platform/kafka.ts"
import type { RelayConfig } from "./config.ts"
import { type RelayError, relayError } from "./errors.ts"
import { leadership } from "./leadership.ts"
import { pollRelay } from "./poll.ts"
import { retentionLoop } from "./retention.ts"
import { walRelay } from "./wal.ts"

export { defaultSlotFor, type RelayConfig, type RelayMode, relayDefaults } from "./config.ts"
export { RelayError } from "./errors.ts"
export { outboxBacklog, slotLag } from "./lag.ts"

const session = (config: RelayConfig) =>
  Effect.gen(function* () {
    const kafka = yield* Kafka
    const lease = yield* leadership(config)
    const producer = yield* kafka
      .producer()
      .pipe(Effect.mapError(relayError("connecting the Kafka producer")))
    yield* Effect.forkScoped(retentionLoop(config))
    const relay = config.mode === "wal" ? walRelay(config, producer) : pollRelay(config, producer)
    return yield* relay.pipe(Effect.raceFirst(lease.lost))
  }).pipe(Effect.scoped)

const restartBackoff = Schedule.exponential("500 millis", 2).pipe(
  Schedule.union(Schedule.spaced("10 seconds")),
)

export const runRelay = (
  config: RelayConfig,
): Effect.Effect<never, RelayError, SqlClient.SqlClient | PgClient.PgClient | Kafka> =>
  session(config).pipe(
    Effect.tapError((e) =>
      e.fatal ? Effect.void : Effect.logWarning(`relay stepping down, will retry: ${e.message}`),
    ),
    Effect.retry({ schedule: restartBackoff, while: (e) => !e.fatal }),
    Effect.withSpan("Relay.run", { attributes: { mode: config.mode, slot: config.slot } }),
  )
