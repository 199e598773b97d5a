/**
 * `intel-group`: forecasts per catalogue model and per user portfolio (breakeven power price,
 * revenue over the horizon under the difficulty trend), refreshed as market data arrives — the whole
 * tenant — and per user as their holdings change. A user's refreshes run under their own lock, so
 * one computed from older holdings cannot commit after a newer one. Cached forecasts are dropped
 * once the refresh has committed.
 */
import { Effect } from "effect"
import { Cache } from "../../engine/cache/swr.ts"
import { beforeCommit, beforeCommitBatch } from "../../engine/consumer/before-commit.ts"
import { defineConsumer, type EventMeta, on } from "../../engine/consumer/definition.ts"
import { invalidateForecasts } from "../cache-keys.ts"
import { refreshForecasts, refreshUserForecasts } from "../portfolio/refresh-forecasts.ts"
import { minerTopic, opsTopic } from "../topics.ts"
import { afterUnit } from "./after-unit.ts"
import { consumerGroups } from "./groups.ts"
import type { PlatformServices } from "./services.ts"

export const forecastLockKey = (userId: string) => `lock:user:${userId}:forecasts`

/** Once the unit committed: some users' cached forecasts in one round trip, or the tenant's. */
const dropCached = (tenantId: string, userIds?: ReadonlyArray<string>) =>
  afterUnit(invalidateForecasts(tenantId, userIds).pipe(Effect.provide(Cache.layer)))

/** A user's holdings changed: their portfolio forecast, once per unit for all its users of a tenant. */
const forUser = (payload: { readonly userId: string }, meta: EventMeta) =>
  beforeCommitBatch(`forecasts:${meta.tenantId}`, payload.userId, (users) =>
    Effect.zipRight(refreshUserForecasts(meta.tenantId, users), dropCached(meta.tenantId, users)),
  )

/** The market changed: every model's and every user's forecast, once per unit. */
const forTenant = (meta: EventMeta) =>
  beforeCommit(
    `forecasts-all:${meta.tenantId}`,
    Effect.zipRight(refreshForecasts(meta.tenantId), dropCached(meta.tenantId)),
  )

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
