/**
 * HashInsight's own health checks, reported after the engine's: `forecast` — how long the newest
 * market data of any tenant has gone without fresh model forecasts from `intel-group` (degraded
 * beyond 5 minutes) — and `cache`, the SWR cache the reads go through.
 */
import { SqlClient } from "@effect/sql"
import { Effect } from "effect"
import { type Check, cacheCheck, ok } from "../observe/health.ts"

const forecastLimitSeconds = 300

const forecastCheck: Check = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  const [row] = yield* sql<{ tenants: number; behind: number; behind_seconds: number; newest: Date | null }>`
    WITH market AS (SELECT tenant_id, max(created_at) AS newest FROM market_data GROUP BY tenant_id),
         forecast AS (SELECT tenant_id, max(computed_at) AS newest FROM forecasts
                      WHERE subject_kind = 'model' GROUP BY tenant_id)
    SELECT count(*)::int AS tenants,
           count(*) FILTER (WHERE f.newest IS NULL OR f.newest < m.newest)::int AS behind,
           coalesce(max(extract(epoch FROM now() - m.newest))
             FILTER (WHERE f.newest IS NULL OR f.newest < m.newest), 0)::float8 AS behind_seconds,
           max(f.newest) AS newest
    FROM market m LEFT JOIN forecast f USING (tenant_id)`
  const behindSeconds = Math.round(row?.behind_seconds ?? 0)
  return ok(
    {
      tenants: row?.tenants ?? 0,
      behind: row?.behind ?? 0,
      behindSeconds,
      newestForecastAt: row?.newest ?? null,
    },
    behindSeconds > forecastLimitSeconds
      ? `market data has waited ${behindSeconds} s for its forecasts (intel-group)`
      : undefined,
  )
})

export const healthChecks = { forecast: forecastCheck, cache: cacheCheck }
