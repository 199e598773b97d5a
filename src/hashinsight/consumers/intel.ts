/**
 * `intel-group`: forecasts per catalogue model and per user portfolio (breakeven power price,
 * revenue over the horizon under the difficulty trend), refreshed as market data arrives — the whole
 * tenant — and per user as their holdings change. A user's refreshes run under their own lock, so
 * one computed from older holdings cannot commit after a newer one. Cached forecasts are dropped
 * once the refresh has committed.
 */
import { Effect } from "effect"
import { Cache } from "../../engine/cache/swr.ts"
import { defineConsumer, type EventMeta, on } from "../../engine/consumer/definition.ts"
import { invalidateForecasts } from "../cache-keys.ts"
import { refreshForecasts } from "../portfolio/refresh-forecasts.ts"
import { minerTopic, opsTopic } from "../topics.ts"
import { afterUnit } from "./after-unit.ts"
import { consumerGroups } from "./groups.ts"
import type { PlatformServices } from "./services.ts"

export const forecastLockKey = (userId: string) => `lock:user:${userId}:forecasts`

const dropCached = (tenantId: string, userId?: string) =>
  afterUnit(invalidateForecasts(tenantId, userId).pipe(Effect.provide(Cache.layer)))

const forUser = (payload: { readonly userId: string }, meta: EventMeta) =>
  Effect.zipRight(refreshForecasts(meta.tenantId, payload.userId), dropCached(meta.tenantId, payload.userId))

const forTenant = (meta: EventMeta) =>
  Effect.zipRight(refreshForecasts(meta.tenantId), dropCached(meta.tenantId))

export const intelConsumer = defineConsumer<PlatformServices>({
  name: "intel",
  group: consumerGroups.intel,
  subscriptions: [
    on(
      minerTopic,
      { MinerAdded: forUser, MinerChanged: forUser, MinerRetired: forUser },
      {
        lockKey: (p) => forecastLockKey(p.userId),
      },
    ),
    on(opsTopic, { MarketDataUpdated: (_, meta) => forTenant(meta) }),
  ],
})
