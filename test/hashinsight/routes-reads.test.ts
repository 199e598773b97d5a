import { describe, expect } from "bun:test"
import { Effect, Metric } from "effect"
import { cacheHits } from "../../src/engine/cache/metrics.ts"
import { Cache } from "../../src/engine/cache/swr.ts"
import { invalidateForecasts, invalidatePortfolios } from "../../src/hashinsight/cache-keys.ts"
import { recalculatePortfolio } from "../../src/hashinsight/portfolio/recalculate.ts"
import { refreshForecasts } from "../../src/hashinsight/portfolio/refresh-forecasts.ts"
import { Redis } from "../../src/platform/redis.ts"
import { addMinerBody, newTenant, startApi } from "../http/support.ts"
import { effectTest } from "../support/effect.ts"

const hits = Effect.map(Metric.value(cacheHits), (s) => s.count)
const cached = (key: string) =>
  Effect.flatMap(Redis, (redis) => redis.use("exists", (c) => c.exists(`cache:v:${key}`)))
const market = { btcPriceUsd: 95_000, difficulty: 1.1e14, blockRewardBtc: 3.125, feesBtcPerBlock: 0.05 }
const notFound = "https://hashinsight.dev/problems/not-found"

describe("read routes through the SWR cache", () => {
  effectTest("GET /api/miner-models serves the 42-model catalogue from one cached key", () =>
    Effect.gen(function* () {
      // The catalogue key is global and may be left stale by an earlier run: start from a miss.
      yield* Effect.flatMap(Cache, (c) => c.invalidate("catalogue")).pipe(Effect.provide(Cache.layer))
      const api = yield* startApi()
      const t = yield* newTenant
      expect((yield* api.call("/api/miner-models")).status).toBe(401)
      const first = yield* api.call("/api/miner-models", { key: t.key })
      expect(first.status).toBe(200)
      const models = first.json as Array<{ id: string; hashrateThs: number; releaseYear: number }>
      expect(models).toHaveLength(42)
      const s21 = models.find((m) => m.id === "antminer-s21")!
      expect(typeof s21.hashrateThs).toBe("number")
      expect(yield* cached("catalogue")).toBe(1)

      const before = yield* hits
      const second = yield* api.call("/api/miner-models", { key: t.key })
      const one = yield* api.call("/api/miner-models/antminer-s21", { key: t.key })
      expect((yield* hits) - before).toBe(2)
      expect(second.text).toBe(first.text)
      expect(one.json).toEqual(s21)
      const missing = yield* api.call("/api/miner-models/no-such-model", { key: t.key })
      expect([missing.status, (missing.json as { type: string }).type]).toEqual([404, notFound])
    }),
  )

  effectTest(
    "GET /api/portfolio/{userId}: 404 until computed, then cached per tenant and user until invalidated",
    () =>
      Effect.gen(function* () {
        const api = yield* startApi()
        const [a, b] = [yield* newTenant, yield* newTenant]
        const get = (key: string) => api.call("/api/portfolio/alice", { key })
        const none = yield* get(a.key)
        expect([none.status, (none.json as { type: string }).type]).toEqual([404, notFound])

        yield* api.call("/api/miners", {
          method: "POST",
          key: a.key,
          body: addMinerBody({ userId: "alice" }),
        })
        yield* api.call("/api/ops/market", { method: "POST", key: a.key, body: JSON.stringify(market) })
        yield* recalculatePortfolio(a.id, "alice", 1)
        const computed = yield* get(a.key)
        expect(computed.status).toBe(200)
        const figures = computed.json as Record<string, unknown>
        expect(figures).toMatchObject({ userId: "alice", minerCount: 3, btcPriceUsd: 95_000, treasuryBtc: 0 })
        expect(figures.dailyRevenueBtc as number).toBeGreaterThan(0)
        expect(figures).not.toHaveProperty("fenceToken")
        expect(yield* cached(`portfolio:${a.id}:alice`)).toBe(1)

        // The stored figures change; within the fresh window the cached ones are served...
        yield* api.call("/api/miners", {
          method: "POST",
          key: a.key,
          body: addMinerBody({ userId: "alice", count: 10 }),
        })
        yield* recalculatePortfolio(a.id, "alice", 2)
        const before = yield* hits
        const again = yield* get(a.key)
        expect((yield* hits) - before).toBe(1)
        expect(again.text).toBe(computed.text)
        // ...until the writer invalidates the key, as the portfolio consumer does after recalculating.
        expect(yield* invalidatePortfolios(a.id, ["alice"]).pipe(Effect.provide(Cache.layer))).toBe(1)
        const fresh = yield* get(a.key)
        expect(fresh.json).toMatchObject({ userId: "alice", minerCount: 13 })

        // Tenant B's alice is another user: nothing of A's leaks through the cache or the table.
        const other = yield* get(b.key)
        expect([other.status, (other.json as { type: string }).type]).toEqual([404, notFound])
        expect((yield* api.call("/api/portfolio/a%00b", { key: a.key })).status).toBe(400)
      }),
  )

  effectTest(
    "GET /api/forecasts?userId=: the user's portfolio forecast and every SHA-256 model's, cached",
    () =>
      Effect.gen(function* () {
        const api = yield* startApi()
        const t = yield* newTenant
        const get = () => api.call("/api/forecasts?userId=alice", { key: t.key })
        const none = yield* get()
        expect([none.status, (none.json as { type: string }).type]).toEqual([404, notFound])
        expect((yield* api.call("/api/forecasts", { key: t.key })).status).toBe(400)

        yield* api.call("/api/miners", {
          method: "POST",
          key: t.key,
          body: addMinerBody({ userId: "alice" }),
        })
        yield* api.call("/api/ops/market", { method: "POST", key: t.key, body: JSON.stringify(market) })
        yield* refreshForecasts(t.id)
        const reply = yield* get()
        expect(reply.status).toBe(200)
        const body = reply.json as {
          userId: string
          portfolio: { revenueBtc: number; profitUsd: number | null; horizonDays: number } | null
          models: Array<{ modelId: string; revenueUsd: number; powerCostUsd: number | null }>
        }
        expect(body.userId).toBe("alice")
        expect(body.portfolio?.revenueBtc).toBeGreaterThan(0)
        expect(body.portfolio?.profitUsd).not.toBeNull()
        expect(body.models).toHaveLength(38)
        expect(body.models.find((m) => m.modelId === "antminer-s21")?.powerCostUsd).toBeNull()
        expect(yield* cached(`forecasts:${t.id}:alice`)).toBe(1)

        const before = yield* hits
        expect((yield* get()).text).toBe(reply.text)
        expect((yield* hits) - before).toBe(1)

        // A user without holdings sees the model forecasts and no portfolio forecast.
        const bob = (yield* api.call("/api/forecasts?userId=bob", { key: t.key })).json as typeof body
        expect(bob.portfolio).toBeNull()
        expect(bob.models).toHaveLength(38)

        // A tenant-wide refresh drops every user's key of this tenant.
        expect(yield* invalidateForecasts(t.id).pipe(Effect.provide(Cache.layer))).toBe(2)
        expect(yield* cached(`forecasts:${t.id}:alice`)).toBe(0)
      }),
  )
})
