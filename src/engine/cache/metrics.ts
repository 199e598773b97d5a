/** The stale-while-revalidate cache's metrics, named like Prometheus metrics. */
import { Metric } from "effect"

export const cacheHits = Metric.counter("cache_hits_total", {
  description: "reads answered by a fresh cached value",
  incremental: true,
})

export const cacheMisses = Metric.counter("cache_misses_total", {
  description: "reads that found no cached value and waited for a load",
  incremental: true,
})

export const cacheStale = Metric.counter("cache_stale_total", {
  description: "reads answered at once by a stale value",
  incremental: true,
})

export const cacheRefreshes = Metric.counter("cache_refresh_total", {
  description: "background refreshes started (one per key at a time across processes)",
  incremental: true,
})
