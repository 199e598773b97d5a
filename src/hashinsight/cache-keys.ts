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

/** Call after recalculating users' portfolios, so the next read loads the new figures. */
export const invalidatePortfolios = (tenantId: string, userIds: ReadonlyArray<string>) =>
  Effect.flatMap(Cache, (cache) => cache.invalidate(userIds.map((user) => portfolioKey(tenantId, user))))

/**
 * Call after refreshing forecasts: of some users, or (no `userIds`) of the whole tenant — the model
 * forecasts every user's answer includes changed too.
 */
export const invalidateForecasts = (tenantId: string, userIds?: ReadonlyArray<string>) =>
  Effect.flatMap(Cache, (cache) =>
    cache.invalidate(
      userIds === undefined
        ? { prefix: forecastsKey(tenantId, "") }
        : userIds.map((user) => forecastsKey(tenantId, user)),
    ),
  )
