/**
 * The delivered watermark under SIGKILL: relays of alternating modes killed at random points while
 * writers commit, some while every Kafka broker is down, so the relay holds events it has read but
 * Kafka never acknowledged. A watermark claiming a row Kafka does not have would lose it (every
 * reader skips what lies below), so after each kill every claimed row must be in Kafka; at the end
 * nothing is lost and what was sent again stays bounded by the kills' in-flight windows.
 */
import { describe, expect } from "bun:test"
import { SqlClient } from "@effect/sql"
import { Effect } from "effect"
import type { RelayMode } from "../../src/engine/relay/index.ts"
import { Kafka } from "../../src/platform/kafka.ts"
import { effectTest } from "../support/effect.ts"
import { faultCluster } from "../support/fault-cluster.ts"
import {
  collectTopic,
  distinctIds,
  outOfOrder,
  relayConfigFor,
  relayDatabase,
  spawnRelay,
  startWriters,
  testTopic,
} from "../support/relay-kit.ts"

const aggregates = ["agg-0", "agg-1", "agg-2", "agg-3"]
const cycles = 8
const brokers = [1, 2, 3]

describe("delivered watermark, relays killed with SIGKILL", () => {
  effectTest(
    `${cycles} kills of WAL and poll relays in turn, some while Kafka is down: the watermark never claims a row Kafka lacks, nothing is lost`,
    () =>
      Effect.gen(function* () {
        const cluster = yield* faultCluster({ brokers: brokers.length })
        const db = yield* relayDatabase
        const topic = testTopic()
        const sql = yield* Effect.provide(SqlClient.SqlClient, db.layer)
        const kafka = yield* collectTopic(topic.name).pipe(
          Effect.provideService(Kafka, yield* Kafka.make(cluster.brokers, "delivered-crash-reader")),
        )
        const { slot } = relayConfigFor(db)
        const spawn = (mode: RelayMode) =>
          spawnRelay(
            db,
            ["--mode", mode, "--slot", slot, "--standby-poll", "200", "--poll-interval", "100"],
            { KAFKA_BROKERS: cluster.bootstrap },
          )
        const kafkaDown = Effect.forEach(brokers, (b) => Effect.promise(() => cluster.down(b)))
        const kafkaUp = Effect.forEach(brokers, (b) => Effect.promise(() => cluster.up(b)))

        /** The rows below the watermark, and those of them Kafka does not have (read to its end). */
        const claims = Effect.gen(function* () {
          yield* kafka.drain
          const claimed = yield* sql<{ id: string }>`
            SELECT id FROM event_outbox WHERE txid < (SELECT below FROM relay_delivered)`
          const ids = distinctIds(kafka.received)
          return { claimed: claimed.length, unbacked: claimed.map((r) => r.id).filter((id) => !ids.has(id)) }
        })

        const { written, stop } = yield* startWriters(db, topic, aggregates)
        let claimedMost = 0
        for (let i = 0; i < cycles; i++) {
          const mode = i % 2 === 0 ? "wal" : "poll"
          const relay = yield* spawn(mode)
          yield* relay.waitForLine("relay active")
          yield* Effect.sleep(`${300 + Math.floor(Math.random() * 1000)} millis`)
          if (i % 3 === 2) {
            // Commits keep coming and the relay keeps reading them, but none reaches Kafka.
            yield* kafkaDown
            yield* Effect.sleep("1500 millis")
            yield* relay.kill("SIGKILL")
            yield* kafkaUp
          } else {
            yield* relay.kill("SIGKILL")
          }
          const after = yield* claims
          expect({ cycle: i, mode, unbacked: after.unbacked }).toEqual({ cycle: i, mode, unbacked: [] })
          claimedMost = Math.max(claimedMost, after.claimed)
        }
        yield* stop

        const last = yield* spawn("wal")
        yield* last.waitForLine("relay active")
        yield* kafka.waitFor(written, "60 seconds")
        expect(yield* last.kill("SIGTERM")).toBe(0)
        yield* kafka.drain

        const ids = distinctIds(kafka.received)
        const resent = kafka.received.length - ids.size
        console.log(
          `${cycles} SIGKILLs, WAL and poll in turn: ${written.length} events committed, ${claimedMost} rows claimed by the watermark at most, ${resent} sent again`,
        )
        expect(claimedMost).toBeGreaterThan(0)
        expect(written.filter((id) => !ids.has(id))).toEqual([])
        expect(outOfOrder(kafka.received)).toEqual([])
        // Each mode switch used to send again everything the other mode had delivered.
        expect(resent).toBeLessThan(written.length / 4)
      }),
    { timeout: 180_000 },
  )
})
