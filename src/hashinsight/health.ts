/**
 * HashInsight's own health checks, reported after the engine's: `forecast` — the age of the newest
 * model forecast `intel-group` computed for any tenant (healthy under 30 minutes; market data that
 * arrived with no forecast computed since is shown as `behind`) — and `cache`, the SWR cache the
 * reads go through.
 */
import { SqlClient } from "@effect/sql"
import { Effect } from "effect"
import { type Check, cacheCheck, ok } from "../observe/health.ts"

export const forecastLimitSeconds = 30 * 60

const forecastCheck: Check = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  const [row] = yield* sql<{
    tenants: number
    behind: number
    newest: Date | null
    age_seconds: number | null
    market_data: boolean
  }>`
    WITH market AS (SELECT tenant_id, max(created_at) AS newest FROM market_data GROUP BY tenant_id),
         forecast AS (SELECT tenant_id, max(computed_at) AS newest FROM forecasts
                      WHERE subject_kind = 'model' GROUP BY tenant_id)
    SELECT (SELECT count(*)::int FROM market) AS tenants,
           (SELECT count(*)::int FROM market m LEFT JOIN forecast f USING (tenant_id)
             WHERE f.newest IS NULL OR f.newest < m.newest) AS behind,
           (SELECT max(newest) FROM forecast) AS newest,
           (SELECT extract(epoch FROM now() - max(newest))::float8 FROM forecast) AS age_seconds,
           EXISTS (SELECT 1 FROM market) AS market_data`
  const ageSeconds =
    row?.age_seconds === null || row?.age_seconds === undefined ? null : Math.round(row.age_seconds)
  const figures = {
    tenants: row?.tenants ?? 0,
    behind: row?.behind ?? 0,
    newestForecastAt: row?.newest ?? null,
    ageSeconds,
  }
  // Nothing to forecast from yet is not a failure; market data and no forecast at all is.
  if (ageSeconds === null)
    return ok(figures, row?.market_data ? "market data has no forecast yet (intel-group)" : undefined)
  return ok(
    figures,
    ageSeconds >= forecastLimitSeconds
      ? `the newest forecast is ${Math.round(ageSeconds / 60)} min old, ${forecastLimitSeconds / 60} min at most (intel-group)`
      : undefined,
  )
})

export const healthChecks = { forecast: forecastCheck, cache: cacheCheck }
