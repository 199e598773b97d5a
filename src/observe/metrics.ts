/**
 * The metrics observe samples, named like Prometheus metrics: consumer lag (the lag monitor) and the
 * platform's gauges that health reads anyway (outbox, WAL slot, DLQ, Redis), set on every sample.
 */
import { Metric } from "effect"

export const lagOffsets = Metric.gauge("consumer_lag_offsets", {
  description: "records of a partition not yet committed by the group: end offset minus committed offset",
})

export const lagSeconds = Metric.gauge("consumer_lag_seconds", {
  description:
    "now minus the time the partition's first uncommitted record was appended (estimated from sampled end offsets)",
})

export const groupLagOffsets = Metric.gauge("consumer_group_lag_offsets", {
  description: "the group's lag summed over its partitions",
})

export const groupLagSeconds = Metric.gauge("consumer_group_lag_seconds", {
  description: "the group's largest partition lag in seconds",
})

export const groupLagLevel = Metric.gauge("consumer_group_lag_level", {
  description: "0 ok, 1 warning (lag at 1,000 or more), 2 critical (10,000 or more)",
})

export const groupStalled = Metric.gauge("consumer_group_stalled", {
  description: "1 while a partition of the group has lag and its committed offset has not moved",
})

export const totalLagOffsets = Metric.gauge("consumer_total_lag_offsets", {
  description: "lag of every watched group, summed",
})

export const lagSampleTimestamp = Metric.gauge("consumer_lag_sample_timestamp_seconds", {
  description: "when the lag monitor last sampled Kafka successfully (Unix time)",
})

export const outboxUnpublished = Metric.gauge("outbox_unpublished_events", {
  description: "outbox events not yet known to be in Kafka",
})

export const outboxOldestSeconds = Metric.gauge("outbox_oldest_unpublished_seconds", {
  description: "age of the oldest outbox event not yet known to be in Kafka, 0 when none",
})

export const slotLagBytes = Metric.gauge("relay_slot_lag_bytes", {
  description: "WAL the relay's replication slot still holds back",
})

export const slotLagSeconds = Metric.gauge("relay_slot_lag_seconds", {
  description: "how far the slot's reader is behind, in time (pg_stat_replication's flush lag)",
})

export const slotActive = Metric.gauge("relay_slot_active", {
  description: "1 while a reader streams from the relay's replication slot",
})

export const dlqWaiting = Metric.gauge("dlq_waiting_entries", {
  description: "dead-lettered entries waiting for an operator (pending or failed replay), per group",
})

export const dlqRatio = Metric.gauge("dlq_ratio", {
  description: "dead-lettered ÷ (processed + dead-lettered) over the last 24 h, per group (as dlq stats)",
})

export const redisClients = Metric.gauge("redis_connected_clients", {
  description: "clients connected to Redis (INFO clients)",
})

export const redisMemory = Metric.gauge("redis_used_memory_bytes", {
  description: "memory Redis uses (INFO memory)",
})

export const membersReporting = Metric.gauge("consumer_group_members_reporting", {
  description: "members of the group whose last report is fresh (within 5 s)",
})

export const membersStale = Metric.gauge("consumer_group_members_stale", {
  description: "members of the group that stopped reporting (no report for 5 s, forgotten after a minute)",
})
