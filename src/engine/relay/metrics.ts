/** The relay's metrics, named like Prometheus metrics. */
import { Metric, MetricBoundaries } from "effect"
import { latencyBoundaries } from "../event-time.ts"

export const eventsPublished = Metric.counter("relay_events_published_total", {
  description: "outbox events acknowledged by Kafka and confirmed (WAL ack or published_at)",
  incremental: true,
})

export const sendFailures = Metric.counter("relay_send_failures_total", {
  description: "Kafka sends that failed and were retried",
  incremental: true,
})

export const deliverDuration = Metric.histogram(
  "relay_deliver_duration_seconds",
  MetricBoundaries.exponential({ start: 0.0005, factor: 2, count: 16 }),
  "time from handing a batch to Kafka to its confirmation",
)

export const outboxToKafka = Metric.histogram(
  "relay_outbox_to_kafka_seconds",
  latencyBoundaries,
  "per event, from its write (its UUIDv7 id's time) to Kafka's acknowledgement (SLO: p50 under 500 ms)",
)
