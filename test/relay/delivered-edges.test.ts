/**
 * The delivered watermark where its xid arithmetic could claim rows Kafka never got: a database
 * moved to another cluster (whose xids count from its own start).
 */
import { describe, expect } from "bun:test"
import { SqlClient } from "@effect/sql"
import { Effect, Fiber, Layer, Schedule } from "effect"
import { type RelayMode, runRelay } from "../../src/engine/relay/index.ts"
import { clientFor } from "../support/database.ts"
import { effectTest } from "../support/effect.ts"
import { otherCluster, restoreDump } from "../support/other-cluster.ts"
import {
  collectTopic,
  commitEvents,
  type RelayDatabase,
  relayConfigFor,
  relayDatabase,
  testTopic,
} from "../support/relay-kit.ts"

const startRelay = (db: RelayDatabase, mode: RelayMode) =>
  runRelay(relayConfigFor(db, { mode })).pipe(Effect.provide(db.layer), Effect.fork)

describe.each(["wal", "poll"] as const)(
  "a database restored into another cluster, then a %s relay",
  (mode) => {
    effectTest(
      "publishes what is written there: the watermark the dump brought counts the old cluster's xids",
      () =>
        Effect.gen(function* () {
          const source = yield* relayDatabase
          const topic = testTopic()
          const kafka = yield* collectTopic(topic.name)
          const sourceSql = yield* Effect.provide(SqlClient.SqlClient, source.layer)

          // The old cluster's relay delivers and claims its events.
          const relay = yield* startRelay(source, "wal")
          const delivered = yield* commitEvents(source, topic, "agg-old", [1, 2, 3])
          yield* kafka.waitFor(delivered)
          yield* sourceSql<{ covered: boolean }>`
          SELECT coalesce((SELECT max(below) FROM relay_delivered) > max(txid), false) AS covered FROM event_outbox`.pipe(
            Effect.filterOrFail((rows) => rows[0]?.covered === true),
            Effect.retry(Schedule.spaced("100 millis")),
            Effect.timeout("15 seconds"),
          )
          yield* Fiber.interrupt(relay)

          const other = yield* otherCluster
          yield* restoreDump(source.url, other.url)
          const target: RelayDatabase = {
            name: source.name,
            url: other.url,
            layer: Layer.succeedContext(yield* Layer.build(clientFor(other.url)).pipe(Effect.orDie)),
          }
          const targetSql = yield* Effect.provide(SqlClient.SqlClient, target.layer)
          // The watermark came along, far above every xid the new cluster will hand out for a while.
          const [restored] = yield* targetSql<{ ahead: boolean }>`
          SELECT (SELECT max(below) FROM relay_delivered) > pg_current_xact_id() AS ahead`
          expect(restored?.ahead).toBe(true)

          yield* runRelay(relayConfigFor(target, { mode })).pipe(
            Effect.provide(target.layer),
            Effect.forkScoped,
          )
          const written = yield* commitEvents(target, topic, "agg-new", [1, 2, 3])
          yield* kafka.waitFor(written, "20 seconds")
          const later = yield* commitEvents(target, topic, "agg-new", [4, 5, 6])
          yield* kafka.waitFor(later, "20 seconds")
          // And the new cluster keeps a watermark of its own, covering what was delivered there.
          yield* targetSql<{ covered: boolean }>`
          SELECT d.below > (SELECT max(txid) FROM event_outbox WHERE aggregateid = 'agg-new') AS covered
          FROM relay_delivered d WHERE d.system_identifier = (SELECT system_identifier FROM pg_control_system())`.pipe(
            Effect.filterOrFail((rows) => rows[0]?.covered === true),
            Effect.retry(Schedule.spaced("100 millis")),
            Effect.timeout("15 seconds"),
          )
        }),
      { timeout: 90_000 },
    )
  },
)
