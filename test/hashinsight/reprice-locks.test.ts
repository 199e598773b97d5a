/**
 * A market event's reprice against a treasury unit of the same tenant: the reprice must not give a
 * user's lock back while the row it wrote under it stays locked, or a unit taking that lock waits
 * on the row while the reprice waits for a lock the unit holds — broken only by the lock's wait.
 */
import { describe, expect } from "bun:test"
import { SqlClient } from "@effect/sql"
import { Duration, Effect, Fiber } from "effect"
import type { EventMeta } from "../../src/engine/consumer/definition.ts"
import { defaultLockOptions, Locks } from "../../src/engine/consumer/lock.ts"
import { portfolioConsumer, portfolioLockKey } from "../../src/hashinsight/consumers/portfolio.ts"
import { updateMarketData } from "../../src/hashinsight/ops/market-data.ts"
import { recalculatePortfolios } from "../../src/hashinsight/portfolio/recalculate.ts"
import { opsTopic } from "../../src/hashinsight/topics.ts"
import { withTenant } from "../../src/platform/db.ts"
import { effectTest } from "../support/effect.ts"

const network = { btcPriceUsd: 60_000, difficulty: 1e14, blockRewardBtc: 3.125, feesBtcPerBlock: 0.1 }

const addMiner = (tenantId: string, userId: string) =>
  Effect.flatMap(
    SqlClient.SqlClient,
    (sql) =>
      sql`INSERT INTO miners ${sql.insert({
        id: crypto.randomUUID(),
        tenant_id: tenantId,
        user_id: userId,
        model_id: "antminer-s21",
        count: 2,
        site: "texas-1",
        power_price_usd_per_kwh: 0.05,
        status: "active",
      })}`,
  )

const marketHandler = portfolioConsumer.subscriptions.find((s) => s.topic.name === opsTopic.name)!.handlers
  .MarketDataUpdated!

describe("a market event's reprice", () => {
  effectTest("and a treasury unit holding another user's lock both commit, neither waits out the lock", () =>
    Effect.gen(function* () {
      const tenantId = crypto.randomUUID()
      const [first, second] = ["u1", "u2"]
      yield* withTenant(tenantId)(
        Effect.gen(function* () {
          yield* updateMarketData(tenantId, network)
          yield* addMiner(tenantId, first!)
          yield* addMiner(tenantId, second!)
        }),
      )
      const locks = yield* Locks.make(defaultLockOptions)
      const started = Date.now()
      // A treasury unit of the second user; once the reprice is under way it also takes the first
      // user's lock (as a chunk holding both would, taken after the reprice was past that user).
      const treasury = yield* Effect.fork(
        locks.withLock(portfolioLockKey(second!), (secondHeld) =>
          Effect.zipRight(
            Effect.sleep(Duration.millis(500)),
            locks.withLock(portfolioLockKey(first!), (firstHeld) =>
              withTenant(tenantId)(
                recalculatePortfolios(tenantId, [
                  { userId: first!, fenceToken: firstHeld.token },
                  { userId: second!, fenceToken: secondHeld.token },
                ]),
              ),
            ),
          ),
        ),
      )
      yield* Effect.sleep(Duration.millis(100))
      const meta: EventMeta = {
        eventId: crypto.randomUUID(),
        eventType: "MarketDataUpdated",
        tenantId,
        traceparent: undefined,
        eventVersion: 1,
        topic: opsTopic.name,
        partition: 0,
        offset: "0",
        key: tenantId,
        attempt: 1,
        lock: undefined,
      }
      // The market event's unit: its transaction stays open a moment after the reprice, as a unit's
      // does while it fences and commits.
      const reprice = yield* Effect.fork(
        withTenant(tenantId)(
          Effect.zipRight(
            marketHandler({ ...network, at: new Date().toISOString() }, meta),
            Effect.sleep(Duration.millis(800)),
          ),
        ).pipe(Effect.provideService(Locks, locks)),
      )
      yield* Fiber.join(reprice)
      yield* Fiber.join(treasury)
      expect(Date.now() - started).toBeLessThan(Duration.toMillis(defaultLockOptions.wait))
    }),
  )
})
