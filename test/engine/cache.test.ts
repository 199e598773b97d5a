import { describe, expect } from "bun:test"
import { Duration, Effect, Metric } from "effect"
import { cacheHits, cacheMisses, cacheRefreshes, cacheStale } from "../../src/engine/cache/metrics.ts"
import { Cache } from "../../src/engine/cache/swr.ts"
import { Redis } from "../../src/platform/redis.ts"
import { effectTest } from "../support/effect.ts"
import { uniqueId } from "../support/ids.ts"

/** A cache with its own Redis connection: what another process would have. */
const cacheInstance = Effect.gen(function* () {
  const redis = yield* Redis.make(process.env.REDIS_URL!)
  return yield* Cache.make.pipe(Effect.provideService(Redis, redis))
})

/** A load that counts its runs and takes `ms`. */
const counter = () => {
  let runs = 0
  return {
    runs: () => runs,
    load: <A>(value: A, ms = 0) =>
      Effect.sync(() => runs++).pipe(Effect.zipRight(Effect.sleep(Duration.millis(ms))), Effect.as(value)),
  }
}

const count = (m: typeof cacheHits) => Effect.map(Metric.value(m), (s) => s.count)

describe("SWR cache", () => {
  effectTest("a fresh value is served without loading again", () =>
    Effect.gen(function* () {
      const cache = yield* cacheInstance
      const key = uniqueId("fresh")
      const c = counter()
      const hits = yield* count(cacheHits)
      expect(yield* cache.get(key, c.load({ btc: 1.5 }), { freshMs: 10_000, staleMs: 10_000 })).toEqual({
        btc: 1.5,
      })
      expect(yield* cache.get(key, c.load({ btc: 9 }), { freshMs: 10_000, staleMs: 10_000 })).toEqual({
        btc: 1.5,
      })
      expect(c.runs()).toBe(1)
      expect((yield* count(cacheHits)) - hits).toBe(1)
    }),
  )

  effectTest(
    "a stale read returns the old value at once and triggers exactly one refresh across processes",
    () =>
      Effect.gen(function* () {
        const [a, b] = [yield* cacheInstance, yield* cacheInstance]
        const key = uniqueId("stale")
        const options = { freshMs: 1000, staleMs: 60_000 }
        const c = counter()
        yield* a.get(key, c.load("v1"), options)
        yield* Effect.sleep(Duration.millis(1050))
        const [stale, refreshes] = [yield* count(cacheStale), yield* count(cacheRefreshes)]

        const started = performance.now()
        const reads = yield* Effect.all(
          Array.from({ length: 20 }, (_, i) => (i % 2 ? a : b).get(key, c.load("v2", 1500), options)),
          { concurrency: "unbounded" },
        )
        const elapsed = performance.now() - started
        expect(reads).toEqual(Array(20).fill("v1"))
        expect(elapsed).toBeLessThan(750) // well under the 1.5 s the refresh takes

        yield* Effect.sleep(Duration.millis(1800))
        expect(c.runs()).toBe(2)
        expect((yield* count(cacheStale)) - stale).toBe(20)
        expect((yield* count(cacheRefreshes)) - refreshes).toBe(1)
        expect(yield* b.get(key, c.load("v3"), options)).toBe("v2")
        expect(c.runs()).toBe(2)
      }),
    { timeout: 10_000 },
  )

  effectTest("concurrent misses in two processes load once and all get that value", () =>
    Effect.gen(function* () {
      const [a, b] = [yield* cacheInstance, yield* cacheInstance]
      const key = uniqueId("miss")
      const c = counter()
      const misses = yield* count(cacheMisses)
      const reads = yield* Effect.all(
        Array.from({ length: 20 }, (_, i) =>
          (i % 2 ? a : b).get(key, c.load({ n: i }, 150), { freshMs: 10_000, staleMs: 0 }),
        ),
        { concurrency: "unbounded" },
      )
      expect(c.runs()).toBe(1)
      expect(new Set(reads.map((r) => JSON.stringify(r))).size).toBe(1)
      expect((yield* count(cacheMisses)) - misses).toBe(20)
    }),
  )

  effectTest("a failed load reaches every waiter, caches nothing, and the next read loads again", () =>
    Effect.gen(function* () {
      const cache = yield* cacheInstance
      const key = uniqueId("fail")
      const options = { freshMs: 10_000, staleMs: 0 }
      let runs = 0
      const failing = Effect.sync(() => runs++).pipe(
        Effect.zipRight(Effect.sleep(Duration.millis(50))),
        Effect.zipRight(Effect.fail("price feed down" as const)),
      )
      const results = yield* Effect.all(
        Array.from({ length: 5 }, () => Effect.flip(cache.get(key, failing, options))),
        { concurrency: "unbounded" },
      )
      expect(results).toEqual(Array(5).fill("price feed down"))
      expect(runs).toBe(1)
      expect(yield* cache.get(key, Effect.succeed(42), options)).toBe(42)
    }),
  )

  effectTest("invalidate drops one key, several, or every key under a prefix", () =>
    Effect.gen(function* () {
      const cache = yield* cacheInstance
      const ns = uniqueId("inv")
      const options = { freshMs: 60_000, staleMs: 0 }
      for (const k of ["a:1", "a:2", "b:1"]) yield* cache.get(`${ns}:${k}`, Effect.succeed(k), options)
      expect(yield* cache.invalidate({ prefix: `${ns}:a:` })).toBe(2)
      expect(yield* cache.get(`${ns}:a:1`, Effect.succeed("reloaded"), options)).toBe("reloaded")
      expect(yield* cache.get(`${ns}:b:1`, Effect.succeed("reloaded"), options)).toBe("b:1")
      expect(yield* cache.invalidate(`${ns}:b:1`)).toBe(1)
      expect(yield* cache.get(`${ns}:b:1`, Effect.succeed("reloaded"), options)).toBe("reloaded")
      for (const k of ["c:1", "c:2", "c:3"]) yield* cache.get(`${ns}:${k}`, Effect.succeed(k), options)
      expect(yield* cache.invalidate([`${ns}:c:1`, `${ns}:c:3`, `${ns}:c:missing`])).toBe(2)
      expect(yield* cache.invalidate([])).toBe(0)
      expect(yield* cache.get(`${ns}:c:1`, Effect.succeed("reloaded"), options)).toBe("reloaded")
      expect(yield* cache.get(`${ns}:c:2`, Effect.succeed("reloaded"), options)).toBe("c:2")
      expect(yield* cache.get(`${ns}:c:3`, Effect.succeed("reloaded"), options)).toBe("reloaded")
    }),
  )
})
