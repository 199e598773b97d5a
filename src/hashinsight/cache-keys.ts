/**
 * The read cache's key scheme and freshness per kind of value, and the invalidations writers call
 * after they change what a key holds. Tenant ids are UUIDs, so `forecasts:{tenant}:` is a prefix
 * of that tenant's keys only; a user id is the rest of its key, so no two users share one.
 */
import { Effect } from "effect"
import { Cache, type SwrOptions } from "../engine/cache/swr.ts"

export const catalogueKey = "catalogue"
export const portfolioKey = (tenantId: string, userId: string) => `portfolio:${tenantId}:${userId}`
export const forecastsKey = (tenantId: string, userId: string) => `forecasts:${tenantId}:${userId}`

export const cachePolicies = {
  /** The catalogue changes only with a migration. */
  catalogue: { freshMs: 5 * 60_000, staleMs: 60 * 60_000 },
  /** Recalculated by the portfolio consumer, which invalidates after each write. */
  portfolio: { freshMs: 5_000, staleMs: 60_000 },
  forecasts: { freshMs: 10_000, staleMs: 5 * 60_000 },
} satisfies Record<string, SwrOptions>

/** Call after recalculating a user's portfolio, so the next read loads the new figures. */
export const invalidatePortfolio = (tenantId: string, userId: string) =>
  Effect.flatMap(Cache, (cache) => cache.invalidate(portfolioKey(tenantId, userId)))

/**
 * Call after refreshing forecasts: of one user, or (no `userId`) of the whole tenant — the model
 * forecasts every user's answer includes changed too.
 */
export const invalidateForecasts = (tenantId: string, userId?: string) =>
  Effect.flatMap(Cache, (cache) =>
    cache.invalidate(
      userId === undefined ? { prefix: forecastsKey(tenantId, "") } : forecastsKey(tenantId, userId),
    ),
  )
