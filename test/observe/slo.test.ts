/**
 * The SLO histograms through the real pipeline: HTTP writes → outbox → WAL relay → Kafka → the two
 * groups that read `events.ops`, all in this process, so its `/metrics` text holds every histogram.
 */
import { describe, expect } from "bun:test"
import { SqlClient } from "@effect/sql"
import { Effect } from "effect"
import { eventTimeMs } from "../../src/engine/event-time.ts"
import { intelConsumer } from "../../src/hashinsight/consumers/intel.ts"
import { portfolioConsumer } from "../../src/hashinsight/consumers/portfolio.ts"
import { prometheusText } from "../../src/observe/prometheus.ts"
import { eventually } from "../support/consumer-fixtures.ts"
import { e2eDatabase, startApiAndRelay, startConsumer, tenantClient } from "../support/e2e-platform.ts"
import { effectTest } from "../support/effect.ts"
import { histogramOf, quantileBucket } from "../support/prometheus.ts"

const writes = 200

/** The q-quantile of `values` (nearest rank, as the histogram's rank). */
const quantile = (values: ReadonlyArray<number>, q: number) => {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.max(0, Math.ceil(q * sorted.length) - 1)]!
}

describe("SLO metrics", () => {
  effectTest(
    "200 HTTP writes raise write-to-visible's count by 200 for each subscribed group, its p50 and p95 where the test's own timings put them; processing and outbox-to-Kafka counted per event",
    () =>
      Effect.gen(function* () {
        const db = yield* e2eDatabase
        yield* Effect.gen(function* () {
          const baseUrl = yield* startApiAndRelay(db)
          const groups = [
            (yield* startConsumer(portfolioConsumer)).group,
            (yield* startConsumer(intelConsumer)).group,
          ]
          const { call } = yield* tenantClient(baseUrl)
          const write = (i: number) =>
            Effect.tap(
              call(
                "POST",
                "/api/ops/market",
                { btcPriceUsd: 100_000 + i, difficulty: 1e14, blockRewardBtc: 3.125, feesBtcPerBlock: 0.125 },
                { "Idempotency-Key": crypto.randomUUID() },
              ),
              (r) => expect(r.status).toBe(201),
            )
          const count = (group: string) =>
            Effect.map(
              prometheusText,
              (t) => histogramOf(t, "consumer_write_to_visible_seconds", { group })?.count,
            )
          // One write first, seen by both groups: their members have joined, so what follows is
          // timed by the pipeline rather than by the groups' first join.
          yield* write(-1)
          for (const group of groups) yield* eventually(Effect.map(count(group), (n) => n === 1))
          const relayedBefore =
            histogramOf(yield* prometheusText, "relay_outbox_to_kafka_seconds")?.count ?? 0

          yield* Effect.forEach(
            Array.from({ length: writes }, (_, i) => i),
            write,
            { concurrency: 8, discard: true },
          )
          for (const group of groups) yield* eventually(Effect.map(count(group), (n) => n === writes + 1))

          const text = yield* prometheusText
          const sql = yield* SqlClient.SqlClient
          for (const group of groups) {
            const visible = histogramOf(text, "consumer_write_to_visible_seconds", { group })!
            expect(visible.count).toBe(writes + 1)
            expect(histogramOf(text, "consumer_event_processing_seconds", { group })!.count).toBe(writes + 1)

            // The test's own timings: each event's id time to its inbox row (written in the
            // transaction that committed its effects), by the database's clock.
            const rows = yield* sql<{ event_id: string; processed_ms: number }>`
              SELECT event_id::text, (extract(epoch FROM processed_at) * 1000)::float8 AS processed_ms
              FROM event_inbox WHERE consumer_group = ${group}`
            expect(rows).toHaveLength(writes + 1)
            const own = rows.map((r) => (r.processed_ms - eventTimeMs(r.event_id)!) / 1000)
            for (const q of [0.5, 0.95]) {
              const [lower, upper] = quantileBucket(visible, q)
              const mine = quantile(own, q)
              // The transaction starts a little before the commit the histogram times.
              const within = mine > lower - 0.25 && mine <= upper
              expect({ group, q, mine, lower, upper, within }).toEqual({
                group,
                q,
                mine,
                lower,
                upper,
                within: true,
              })
            }
            // On average too, the histogram's figure is the test's plus the rest of the transaction.
            const lateBy = visible.sum / visible.count - own.reduce((a, b) => a + b, 0) / own.length
            expect({ group, lateBy, close: lateBy > -0.01 && lateBy < 0.25 }).toEqual({
              group,
              lateBy,
              close: true,
            })
          }
          const relayed = histogramOf(text, "relay_outbox_to_kafka_seconds")!
          expect(relayed.count - relayedBefore).toBeGreaterThanOrEqual(writes)
        }).pipe(Effect.provide(db.layer))
      }),
    { timeout: 120_000 },
  )
})
