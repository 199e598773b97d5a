/** The consumer runtime's metrics, named like Prometheus metrics and tagged by consumer group. */
import { Metric, MetricBoundaries } from "effect"
import { latencyBoundaries } from "../event-time.ts"

export const eventsProcessed = Metric.counter("consumer_events_processed_total", {
  description: "events whose handler effects committed",
  incremental: true,
})

export const eventsSkipped = Metric.counter("consumer_events_skipped_total", {
  description:
    "events skipped: already in the inbox, waiting in the DLQ (counted there as a repeat), unhandled type, or another group's replay",
  incremental: true,
})

export const eventsDeadLettered = Metric.counter("consumer_dlq_total", {
  description: "records routed to the dead-letter queue as a new entry",
  incremental: true,
})

export const handlerRetries = Metric.counter("consumer_retries_total", {
  description: "handler attempts after the first",
  incremental: true,
})

export const handlerDuration = Metric.histogram(
  "consumer_handler_duration_seconds",
  MetricBoundaries.exponential({ start: 0.00025, factor: 2, count: 16 }),
  "handler run time per event, inside its transaction",
)

export const writeToVisible = Metric.histogram(
  "consumer_write_to_visible_seconds",
  latencyBoundaries,
  "from the event's write (its UUIDv7 id's time) to the commit of the group's effects (SLO: p95 under 3 s)",
)

export const eventProcessing = Metric.histogram(
  "consumer_event_processing_seconds",
  latencyBoundaries,
  "from the member starting the event's unit to its commit: inbox claim, locks, handler, retries (SLO: p95 under 1 s)",
)

export const consumerRestarts = Metric.counter("consumer_restarts_total", {
  description: "Kafka consumers recreated after a crash",
  incremental: true,
})

export const dependencyUnavailable = Metric.gauge("consumer_dependency_unavailable", {
  description: "1 while the member holds partitions because this dependency is unreachable",
})

export const outageRetries = Metric.counter("consumer_outage_retries_total", {
  description: "failed probes of an unreachable dependency while partitions were held",
  incremental: true,
})

export const groupJoins = Metric.counter("consumer_group_joins_total", {
  description: "times the member joined its group: the first join and every rebalance after it",
  incremental: true,
})
