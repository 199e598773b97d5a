/**
 * `portfolio-recalc-group`: keeps each user's `portfolios` row in step with their holdings,
 * treasury and the tenant's market data. Every recalculation runs under the user's lock and writes
 * with its fencing token, so two members never interleave one user's figures and a holder whose
 * lock expired cannot overwrite a newer result. The cached portfolio is dropped once committed.
 */
import { SqlClient } from "@effect/sql"
import { Effect } from "effect"
import { Cache } from "../../engine/cache/swr.ts"
import { beforeCommit, beforeCommitBatch, withUnitLocks } from "../../engine/consumer/before-commit.ts"
import { defineConsumer, type EventMeta, on } from "../../engine/consumer/definition.ts"
import { Fatal, FencingRejected } from "../../engine/consumer/errors.ts"
import { invalidatePortfolios } from "../cache-keys.ts"
import { postToLedger } from "../portfolio/ledger.ts"
import { recalculatePortfolios, StaleFenceToken } from "../portfolio/recalculate.ts"
import { minerTopic, opsTopic, treasuryTopic } from "../topics.ts"
import { afterUnit } from "./after-unit.ts"
import { consumerGroups } from "./groups.ts"
import type { PlatformServices } from "./services.ts"

export const portfolioLockKey = (userId: string) => `lock:user:${userId}:portfolio`

/** Once the unit committed, one round trip for all the users it recalculated. */
const dropCached = (tenantId: string, userIds: ReadonlyArray<string>) =>
  afterUnit(invalidatePortfolios(tenantId, userIds).pipe(Effect.provide(Cache.layer)))

/**
 * A portfolio already written with a newer token is the lock's fence speaking: reported as the
 * engine's `FencingRejected` for the user's lock, so the runtime retries it and `Locks` brings a
 * fence counter that fell behind (Redis data loss) back up.
 */
export const asLockFencing = <A, E, R>(self: Effect.Effect<A, E | StaleFenceToken, R>) =>
  Effect.mapError(self, (e) =>
    e instanceof StaleFenceToken
      ? new FencingRejected({ lockKey: portfolioLockKey(e.userId), token: e.fenceToken, newest: e.newest })
      : e,
  )

/**
 * For events the runtime locked by `portfolioLockKey`: recalculated with the runtime's token at the
 * end of the unit, every user of the tenant the unit touched in one round of statements, so a chunk
 * with many events of a user recalculates that user once.
 */
const forUser = (payload: { readonly userId: string }, meta: EventMeta) =>
  meta.lock === undefined
    ? Effect.fail(new Fatal({ message: `no lock held for ${payload.userId}'s portfolio` }))
    : beforeCommitBatch(
        `portfolio:${meta.tenantId}`,
        { userId: payload.userId, fenceToken: meta.lock.token },
        (targets) =>
          Effect.zipRight(
            asLockFencing(recalculatePortfolios(meta.tenantId, targets)),
            dropCached(
              meta.tenantId,
              targets.map((t) => t.userId),
            ),
          ),
      )

/** Users whose figures depend on the market: those with active holdings or a portfolio already. */
const usersToReprice = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  const rows = yield* sql<{ user_id: string }>`
    SELECT user_id FROM miners WHERE status = 'active'
    UNION
    SELECT user_id FROM portfolios
    ORDER BY user_id`
  return rows.map((r) => r.user_id)
})

/**
 * A market event reprices every user of the tenant, holding all their locks at once until the unit
 * commits (`withUnitLocks`, reusing the locks its unit already holds). Taken one at a time and given
 * back after each user, a lock let a treasury unit holding the next user's lock take that user and
 * wait on the row the reprice had written, while the reprice waited for the lock that unit held.
 * Several market events of a tenant in one unit reprice once, at the newest market data.
 */
const repriceTenant = (meta: EventMeta) =>
  beforeCommit(
    `reprice:${meta.tenantId}`,
    Effect.gen(function* () {
      const users = yield* usersToReprice
      if (users.length === 0) return
      yield* withUnitLocks(users.map(portfolioLockKey), (held) =>
        Effect.zipRight(
          asLockFencing(
            recalculatePortfolios(
              meta.tenantId,
              users.map((userId) => ({ userId, fenceToken: held.get(portfolioLockKey(userId))!.token })),
            ),
          ),
          dropCached(meta.tenantId, users),
        ),
      )
    }),
  )

export const portfolioConsumer = defineConsumer<PlatformServices>({
  name: "portfolio",
  group: consumerGroups.portfolio,
  subscriptions: [
    on(
      minerTopic,
      { MinerAdded: forUser, MinerChanged: forUser, MinerRetired: forUser },
      {
        lockKey: (p) => portfolioLockKey(p.userId),
      },
    ),
    on(
      treasuryTopic,
      {
        TreasuryTransactionRecorded: (p, meta) =>
          Effect.gen(function* () {
            yield* postToLedger(meta.tenantId, meta.eventId, p)
            yield* forUser(p, meta)
          }),
      },
      {
        lockKey: (p) => portfolioLockKey(p.userId),
      },
    ),
    on(opsTopic, { MarketDataUpdated: (_, meta) => repriceTenant(meta) }),
  ],
})
