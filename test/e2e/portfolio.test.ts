/**
 * End to end through real services: HTTP writes → outbox → WAL relay → Kafka → the portfolio and
 * intel consumer groups → the portfolio and forecast reads over HTTP (through the SWR cache).
 * Expected figures are worked out by hand from the catalogue's Antminer S21 (200 TH/s, 3,500 W):
 *   BTC per TH per day = 86,400 s × (3.125 + 0.125) BTC × 10¹² / (difficulty × 2³²)
 *   at difficulty 10¹⁴: 6.537884473800659e-7 BTC; 10 × S21 = 2,000 TH/s → 0.0013075768947601318 BTC
 *   × $100,000 = $130.7577/day; power 35 kW × 24 h × $0.05 = $42 → profit $88.7577/day.
 *   3 × S21 at $0.08: 600 TH/s → 0.00039227306842803955 BTC = $39.2273, power $20.16, profit $19.0673.
 *   Difficulty doubled to 2×10¹⁴ halves revenue: $65.3788 (profit $23.3788) and $19.6137 (profit −$0.5463).
 *   30-day forecast at +0.15 %/day difficulty: revenue × Σ_{d<30} 1.0015^-d = × 29.357493576376683.
 */
import { describe, expect } from "bun:test"
import { Effect, Option } from "effect"
import { intelConsumer } from "../../src/hashinsight/consumers/intel.ts"
import { portfolioConsumer } from "../../src/hashinsight/consumers/portfolio.ts"
import { Forecasts } from "../../src/hashinsight/forecasts/api.ts"
import { PortfolioView } from "../../src/hashinsight/portfolio/api.ts"
import { eventually } from "../support/consumer-fixtures.ts"
import { e2eDatabase, startApiAndRelay, startConsumer, tenantClient } from "../support/e2e-platform.ts"
import { effectTest } from "../support/effect.ts"

const market = (difficulty: number) => ({
  btcPriceUsd: 100_000,
  difficulty,
  blockRewardBtc: 3.125,
  feesBtcPerBlock: 0.125,
})
const thirtyDays = 29.357493576376683

describe("portfolio and forecasts end to end", () => {
  effectTest(
    "a miner added over HTTP shows in the portfolio with hand-computed figures; a difficulty change reprices every portfolio and forecast",
    () =>
      Effect.gen(function* () {
        const db = yield* e2eDatabase
        yield* Effect.gen(function* () {
          const baseUrl = yield* startApiAndRelay(db)
          yield* startConsumer(portfolioConsumer)
          yield* startConsumer(intelConsumer)
          const { call, read } = yield* tenantClient(baseUrl)
          const write = (path: string, body: unknown) =>
            Effect.tap(call("POST", path, body, { "Idempotency-Key": crypto.randomUUID() }), (r) =>
              expect(r.status).toBe(201),
            )
          const portfolioOf = (userId: string) => read(`/api/portfolio/${userId}`, PortfolioView)
          const forecastsOf = (userId: string) => read(`/api/forecasts?userId=${userId}`, Forecasts)
          /** Polls a read until `ready` holds for its value, then returns that value. */
          const when = <A, E, R>(self: Effect.Effect<Option.Option<A>, E, R>, ready: (a: A) => boolean) =>
            Effect.zipRight(
              eventually(Effect.map(self, Option.exists(ready))),
              Effect.map(self, Option.getOrThrow),
            )
          const s21 = (f: Forecasts) => f.models.find((m) => m.modelId === "antminer-s21")!

          yield* write("/api/ops/market", market(1e14))
          yield* write("/api/miners", {
            userId: "alice",
            modelId: "antminer-s21",
            count: 10,
            site: "texas-1",
            powerPriceUsdPerKwh: 0.05,
          })
          yield* write("/api/miners", {
            userId: "bob",
            modelId: "antminer-s21",
            count: 3,
            site: "quebec-2",
            powerPriceUsdPerKwh: 0.08,
          })
          yield* write("/api/treasury/transactions", { userId: "alice", kind: "deposit", btc: 0.5 })

          // Each read goes through the cache: the consumer's post-commit invalidation makes it current.
          const alice = yield* when(portfolioOf("alice"), (p) => p.minerCount === 10 && p.treasuryBtc === 0.5)
          expect(alice.totalHashrateThs).toBe(2000)
          expect(alice.totalPowerW).toBe(35_000)
          expect(alice.dailyPowerCostUsd).toBeCloseTo(42, 9)
          expect(alice.dailyRevenueBtc).toBeCloseTo(0.0013075768947601318, 12)
          expect(alice.dailyRevenueUsd).toBeCloseTo(130.75768947601318, 6)
          expect(alice.dailyProfitUsd).toBeCloseTo(88.75768947601318, 6)
          expect(alice.treasuryUsd).toBeCloseTo(50_000, 6)
          expect(alice.difficulty).toBe(1e14)

          const bob = yield* when(portfolioOf("bob"), (p) => p.minerCount === 3)
          expect(bob.totalHashrateThs).toBe(600)
          expect(bob.dailyPowerCostUsd).toBeCloseTo(20.16, 9)
          expect(bob.dailyRevenueUsd).toBeCloseTo(39.227306842803955, 6)
          expect(bob.dailyProfitUsd).toBeCloseTo(19.067306842803955, 6)
          expect(bob.treasuryUsd).toBe(0)

          // The user's forecast follows their holdings, the models' follow the market event (another
          // partition): both are in once each event is.
          const before = yield* when(
            forecastsOf("alice"),
            (f) =>
              f.portfolio !== null &&
              Math.abs(f.portfolio.revenueBtc - 0.0013075768947601318 * thirtyDays) < 1e-12 &&
              f.models.some((m) => m.modelId === "antminer-s21"),
          )
          // One S21's revenue per kWh it burns: $13.0758 / 84 kWh.
          expect(s21(before).breakevenPowerUsdPerKwh).toBeCloseTo(13.075768947601318 / 84, 9)

          // The network gets twice as hard: every portfolio and forecast of the tenant follows.
          yield* write("/api/ops/market", market(2e14))
          const alice2 = yield* when(portfolioOf("alice"), (p) => p.difficulty === 2e14)
          expect(alice2.dailyRevenueBtc).toBeCloseTo(0.0006537884473800659, 12)
          expect(alice2.dailyProfitUsd).toBeCloseTo(23.378844738006592, 6)
          expect(alice2.treasuryUsd).toBeCloseTo(50_000, 6)
          const bob2 = yield* when(portfolioOf("bob"), (p) => p.difficulty === 2e14)
          expect(bob2.dailyRevenueUsd).toBeCloseTo(19.613653421401978, 6)
          expect(bob2.dailyProfitUsd).toBeCloseTo(-0.5463465785980226, 6)

          const after = { alice: before, bob: before }
          for (const [user, dailyBtc] of [
            ["alice", 0.0006537884473800659],
            ["bob", 0.00019613653421401978],
          ] as const)
            after[user] = yield* when(
              forecastsOf(user),
              (f) => f.portfolio !== null && Math.abs(f.portfolio.revenueBtc - dailyBtc * thirtyDays) < 1e-12,
            )
          expect(s21(after.bob).breakevenPowerUsdPerKwh).toBeCloseTo(13.075768947601318 / 84 / 2, 9)
          expect(after.bob.portfolio?.profitUsd).toBeLessThan(0)
        }).pipe(Effect.provide(db.layer))
      }),
    { timeout: 120_000 },
  )
})
