import { Duration, type Redacted } from "effect"

export type RelayMode = "wal" | "poll"

export interface RelayConfig {
  readonly mode: RelayMode
  /**
   * The WAL relay's permanent replication slot. Also names the leadership lock in both modes, so a
   * WAL relay and a polling relay for the same slot exclude each other too.
   */
  readonly slot: string
  readonly publication: string
  /** The replication protocol and the leadership session need their own plain connections. */
  readonly databaseUrl: Redacted.Redacted<string>
  /** Most events per Kafka `sendBatch` (poll) / most transactions per batch (WAL). */
  readonly batchSize: number
  /**
   * How long the first event of a batch may wait for more to join it (Kafka producers' linger.ms,
   * 5 ms by default since Kafka 4.0). Fewer, fuller sends: less relay and broker work per event,
   * and consumers fetch more events per record batch.
   */
  readonly linger: Duration.Duration
  /** Poll mode: the fallback interval when no NOTIFY wakes the poller. */
  readonly pollInterval: Duration.Duration
  /** How often a standby tries to take over. */
  readonly standbyPoll: Duration.Duration
  /** How long delivered rows (marked published, or below the delivered watermark) stay in `event_outbox`. */
  readonly retention: Duration.Duration
  readonly retentionInterval: Duration.Duration
}

export const relayDefaults = {
  mode: "wal",
  slot: "hashinsight_outbox_relay",
  publication: "hashinsight_outbox",
  batchSize: 2000,
  linger: Duration.millis(5),
  pollInterval: Duration.millis(500),
  standbyPoll: Duration.millis(500),
  retention: Duration.hours(24),
  retentionInterval: Duration.minutes(1),
} as const satisfies Omit<RelayConfig, "databaseUrl">

/**
 * The slot a relay uses unless told otherwise: one per database, since slot names are cluster-wide
 * and two databases on one cluster must not share (and fight over) a slot.
 */
export const defaultSlotFor = (databaseUrl: string) => {
  const database = decodeURIComponent(new URL(databaseUrl).pathname.slice(1)) || "postgres"
  return `${relayDefaults.slot}_${database.toLowerCase().replace(/[^a-z0-9_]/g, "_")}`.slice(0, 63)
}

/** The NOTIFY channel of migration 010's wake-up trigger. */
export const wakeupChannel = "hashinsight_outbox"
