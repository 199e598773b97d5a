/** The platform's own metrics, named like Prometheus metrics: the process's database pool. */
import { Metric } from "effect"

export const poolConnections = Metric.gauge("db_pool_connections", {
  description: "connections the process's database pool holds, in use or idle",
})

export const poolIdle = Metric.gauge("db_pool_idle_connections", {
  description: "pooled database connections idle",
})

export const poolWaiting = Metric.gauge("db_pool_waiting_requests", {
  description: "checkouts waiting for a pooled database connection",
})

export const poolMax = Metric.gauge("db_pool_max_connections", {
  description: "the pool's size limit (DB_POOL_MAX)",
})
