/**
 * When an event was written, from its id: outbox ids are UUIDv7 (outbox.ts), whose first 48 bits are
 * the Unix time in milliseconds at which the writer made them, inside its transaction. The SLO
 * latencies (write-to-visible, outbox-to-Kafka) start there. An id of another version (a caller's
 * own, Debezium-relayed rows of another writer) has no time.
 */
import { MetricBoundaries } from "effect"

export const eventTimeMs = (id: string): number | undefined =>
  id.length === 36 && id[14] === "7" ? Number.parseInt(id.slice(0, 8) + id.slice(9, 13), 16) : undefined

/** Histogram bounds in seconds for the SLO latencies, the targets (0.5 s, 1 s, 3 s) among them. */
export const latencyBoundaries = MetricBoundaries.fromIterable([
  0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 30, 60,
])
