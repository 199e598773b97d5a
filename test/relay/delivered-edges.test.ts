/**
 * The delivered watermark where its xid arithmetic could claim rows Kafka never got: a transaction
 * older than the ones the WAL relay delivered, written partly in savepoints, that commits after
 * them; a prepared (two-phase) transaction committed after younger ones; a leader frozen while another takes over and then thawed (two relays active at once, of
 * either mode), some of its sends reaching only part of the brokers; and a database moved to
 * another cluster (whose xids count from its own start).
 */
import { describe, expect } from "bun:test"
import { SqlClient } from "@effect/sql"
import { Deferred, Effect, Fiber, Layer, Schedule } from "effect"
import pg from "pg"
import { Outbox } from "../../src/engine/outbox.ts"
import { type RelayMode, runRelay } from "../../src/engine/relay/index.ts"
import { Kafka } from "../../src/platform/kafka.ts"
import { migrate } from "../../src/platform/migrator.ts"
import { clientFor } from "../support/database.ts"
import { effectTest } from "../support/effect.ts"
import { faultCluster } from "../support/fault-cluster.ts"
import { otherCluster, restoreDump } from "../support/other-cluster.ts"
import {
  collectTopic,
  commitEvents,
  distinctIds,
  firstOccurrenceOrder,
  outOfOrder,
  type RelayDatabase,
  relayConfigFor,
  relayDatabase,
  spawnRelay,
  startWriters,
  tenantId,
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

          const other = yield* otherCluster()
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

/** The watermark of this cluster as text, or undefined before any relay claimed. */
const watermarkOf = (sql: SqlClient.SqlClient) =>
  sql<{ below: string }>`
    SELECT below::text AS below FROM relay_delivered
    WHERE system_identifier = (SELECT system_identifier FROM pg_control_system())`.pipe(
    Effect.map((rows) => (rows[0] ? BigInt(rows[0].below) : undefined)),
  )

describe("an old transaction that commits after younger ones the WAL relay delivered", () => {
  effectTest(
    "keeps the watermark at or below its txid while open, savepoint rows included; a polling relay after the WAL relay is killed sends what it kept",
    () =>
      Effect.gen(function* () {
        const db = yield* relayDatabase
        const topic = testTopic()
        const kafka = yield* collectTopic(topic.name)
        const sql = yield* Effect.provide(SqlClient.SqlClient, db.layer)
        const { slot } = relayConfigFor(db)
        const spawn = (mode: RelayMode) =>
          spawnRelay(db, ["--mode", mode, "--slot", slot, "--standby-poll", "200", "--poll-interval", "100"])
        const wal = yield* spawn("wal")
        yield* wal.waitForLine("relay active")

        const event = (n: number) => ({
          type: "Happened" as const,
          aggregateId: "agg-long",
          tenantId,
          payload: { aggregate: "agg-long", n },
        })
        const opened = yield* Deferred.make<{
          kept: ReadonlyArray<string>
          undone: ReadonlyArray<string>
          txid: bigint
        }>()
        const release = yield* Deferred.make<void>()
        // Its first rows in a released savepoint, then a savepoint rolled back, then rows at top level.
        const long = yield* Effect.gen(function* () {
          const tx = yield* SqlClient.SqlClient
          const outbox = yield* Outbox
          return yield* tx.withTransaction(
            Effect.gen(function* () {
              yield* tx`SAVEPOINT first`
              const first = yield* outbox.append(topic, [event(1), event(2)])
              yield* tx`RELEASE SAVEPOINT first`
              yield* tx`SAVEPOINT undone`
              const undone = yield* outbox.append(topic, [event(-1)])
              yield* tx`ROLLBACK TO SAVEPOINT undone`
              const last = yield* outbox.append(topic, [event(3)])
              const [row] = yield* tx<{ txid: string }>`SELECT pg_current_xact_id()::text AS txid`
              yield* Deferred.succeed(opened, { kept: [...first, ...last], undone, txid: BigInt(row!.txid) })
              yield* Deferred.await(release)
            }),
          )
        }).pipe(Effect.provide(Layer.merge(db.layer, Outbox.layer)), Effect.fork)
        const old = yield* Deferred.await(opened)

        // Younger transactions commit and reach Kafka through the WAL relay meanwhile.
        const younger = (yield* Effect.forEach(
          ["agg-a", "agg-b", "agg-c"],
          (agg) =>
            Effect.forEach([1, 2, 3, 4, 5, 6, 7, 8], (n) =>
              commitEvents(db, topic, agg, [n]).pipe(Effect.zipLeft(Effect.sleep("30 millis"))),
            ),
          { concurrency: "unbounded" },
        )).flat(2)
        yield* kafka.waitFor(younger)
        const [youngest] = yield* sql<{ txid: string }>`SELECT max(txid)::text AS txid FROM event_outbox`
        // The relay has claimed what it delivered (several rounds of its watermark loop) — but
        // nothing at or above the open transaction, although everything younger is in Kafka.
        const claimed = yield* watermarkOf(sql).pipe(
          Effect.filterOrFail((w) => w !== undefined),
          Effect.retry(Schedule.spaced("100 millis")),
          Effect.timeout("15 seconds"),
        )
        yield* Effect.sleep("1500 millis")
        const held = yield* watermarkOf(sql)
        console.log(
          `old transaction ${old.txid}, youngest delivered ${youngest!.txid}: watermark ${claimed} then ${held}`,
        )
        expect(held! <= old.txid).toBe(true)

        // It commits and the WAL relay dies at once, before or after it sent those events.
        yield* Deferred.succeed(release, undefined)
        yield* Fiber.join(long)
        yield* wal.kill("SIGKILL")
        const after = yield* commitEvents(db, topic, "agg-long", [4])

        const poll = yield* spawn("poll")
        yield* poll.waitForLine("relay active")
        yield* kafka.waitFor([...old.kept, ...after, ...younger])
        yield* watermarkOf(sql).pipe(
          Effect.filterOrFail((w) => w !== undefined && w > old.txid),
          Effect.retry(Schedule.spaced("100 millis")),
          Effect.timeout("15 seconds"),
        )
        expect(yield* poll.kill("SIGTERM")).toBe(0)
        yield* kafka.drain
        const ids = distinctIds(kafka.received)
        expect(old.undone.filter((id) => ids.has(id))).toEqual([])
        expect(firstOccurrenceOrder(kafka.received).get("agg-long")).toEqual([1, 2, 3, 4])
      }),
    { timeout: 90_000 },
  )
})

/** Advisory-lock namespace of relay leadership (leadership.ts): "rlay". */
const leadershipLock = 0x726c6179

describe("a leader frozen while another takes over, then thawed", () => {
  effectTest(
    "two relays active at once, in every pairing of modes, some sends reaching only part of the brokers: every row below the watermark is in Kafka, nothing lost",
    () =>
      Effect.gen(function* () {
        const cluster = yield* faultCluster({ brokers: 3 })
        const db = yield* relayDatabase
        const topic = testTopic()
        const sql = yield* Effect.provide(SqlClient.SqlClient, db.layer)
        const kafka = yield* collectTopic(topic.name).pipe(
          Effect.provideService(Kafka, yield* Kafka.make(cluster.brokers, "delivered-edges-reader")),
        )
        const { slot } = relayConfigFor(db)
        const spawn = (mode: RelayMode) =>
          spawnRelay(
            db,
            ["--mode", mode, "--slot", slot, "--standby-poll", "200", "--poll-interval", "100"],
            { KAFKA_BROKERS: cluster.bootstrap },
          )
        /** The claims first, then Kafka read to its end: a claim made before the read is backed by then. */
        const unbacked = Effect.gen(function* () {
          const claimed = yield* sql<{ id: string }>`
            SELECT id FROM event_outbox WHERE txid < (
              SELECT below FROM relay_delivered
              WHERE system_identifier = (SELECT system_identifier FROM pg_control_system()))`
          yield* kafka.drain
          const ids = distinctIds(kafka.received)
          return { claimed: claimed.length, missing: claimed.map((r) => r.id).filter((id) => !ids.has(id)) }
        })
        /** Ends the frozen leader's lock session, as a network partition would: the lock is free. */
        const dropLockSession = sql`
          SELECT pg_terminate_backend(pid) FROM pg_locks
          WHERE locktype = 'advisory' AND granted AND classid = ${leadershipLock}
            AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`

        const { written, stop } = yield* startWriters(db, topic, ["agg-0", "agg-1", "agg-2", "agg-3"])
        const pairs: ReadonlyArray<readonly [RelayMode, RelayMode, boolean]> = [
          ["wal", "poll", true],
          ["poll", "wal", true],
          ["wal", "wal", false],
          ["poll", "poll", false],
        ]
        let leader = yield* spawn(pairs[0]![0])
        yield* leader.waitForLine("relay active")
        let claimedMost = 0
        for (const [i, [, next, partial]] of pairs.entries()) {
          yield* Effect.sleep(`${300 + Math.floor(Math.random() * 700)} millis`)
          // With one broker away, a send reaches the partitions the others lead and fails on the rest.
          if (partial) yield* Effect.promise(() => cluster.down(1))
          yield* Effect.sleep("500 millis")
          process.kill(leader.pid, "SIGSTOP")
          yield* dropLockSession
          const successor = yield* spawn(next)
          yield* successor.waitForLine("relay active")
          yield* Effect.sleep("1 second")
          if (partial) yield* Effect.promise(() => cluster.up(1))
          // Still frozen, the old leader cannot send what it claimed, and the successor skips it.
          const frozen = yield* unbacked
          expect({ cycle: i, frozen: frozen.missing }).toEqual({ cycle: i, frozen: [] })
          // Thawed, the old leader finishes what it had in hand — sends, marks, claims — and only
          // then finds its lock session gone.
          process.kill(leader.pid, "SIGCONT")
          yield* Effect.sleep("1500 millis")
          const thawed = yield* unbacked
          expect({ cycle: i, thawed: thawed.missing }).toEqual({ cycle: i, thawed: [] })
          claimedMost = Math.max(claimedMost, frozen.claimed, thawed.claimed)
          yield* leader.kill("SIGKILL")
          leader = successor
        }
        yield* stop
        yield* kafka.waitFor(written, "60 seconds")
        expect(yield* leader.kill("SIGTERM")).toBe(0)
        yield* kafka.drain
        const ids = distinctIds(kafka.received)
        const resent = kafka.received.length - ids.size
        console.log(
          `${pairs.length} frozen leaders: ${written.length} committed, ${claimedMost} claimed at most, ${resent} sent again`,
        )
        expect(claimedMost).toBeGreaterThan(0)
        expect(written.filter((id) => !ids.has(id))).toEqual([])
        expect(outOfOrder(kafka.received)).toEqual([])
      }),
    { timeout: 180_000 },
  )
})

describe("a prepared (two-phase) transaction", () => {
  effectTest(
    "holds the watermark at or below its txid until COMMIT PREPARED; a polling relay after the WAL relay then sends it",
    () =>
      Effect.gen(function* () {
        // The suite's cluster has max_prepared_transactions = 0: PREPARE TRANSACTION needs a server of its own.
        const other = yield* otherCluster({ max_prepared_transactions: "4" })
        const layer = Layer.succeedContext(yield* Layer.build(clientFor(other.url)).pipe(Effect.orDie))
        yield* migrate().pipe(Effect.provide(layer), Effect.orDie)
        const db: RelayDatabase = { name: "hashinsight", url: other.url, layer }
        const topic = testTopic()
        const kafka = yield* collectTopic(topic.name)
        const sql = yield* Effect.provide(SqlClient.SqlClient, layer)
        const wal = yield* startRelay(db, "wal")
        // Streaming before the PREPARE: creating a logical slot waits for every prepared transaction.
        yield* sql`
          SELECT 1 FROM relay_state r JOIN pg_replication_slots s ON s.slot_name = r.name
          WHERE r.acked_lsn IS NOT NULL AND s.active`.pipe(
          Effect.filterOrFail((rows) => rows.length > 0),
          Effect.retry(Schedule.spaced("100 millis")),
          Effect.timeout("20 seconds"),
        )

        const client = yield* Effect.acquireRelease(
          Effect.promise(async () => {
            const c = new pg.Client({ connectionString: other.url })
            await c.connect()
            return c
          }),
          (c) => Effect.promise(() => c.end()),
        )
        const prepared = Bun.randomUUIDv7()
        const txid = yield* Effect.promise(async () => {
          await client.query("BEGIN")
          await client.query(
            `INSERT INTO event_outbox (id, aggregatetype, aggregateid, type, payload, tenant_id)
             VALUES ($1, $2, 'agg-2pc', 'Happened', $3, $4)`,
            [prepared, topic.aggregatetype, JSON.stringify({ aggregate: "agg-2pc", n: 1 }), tenantId],
          )
          const r = await client.query<{ txid: string }>("SELECT pg_current_xact_id()::text AS txid")
          await client.query("PREPARE TRANSACTION 'relay_watermark'")
          return BigInt(r.rows[0]!.txid)
        })

        const younger = (yield* Effect.forEach(["agg-a", "agg-b"], (agg) =>
          Effect.forEach([1, 2, 3, 4, 5], (n) => commitEvents(db, topic, agg, [n])),
        )).flat(2)
        yield* kafka.waitFor(younger)
        yield* watermarkOf(sql).pipe(
          Effect.filterOrFail((w) => w !== undefined),
          Effect.retry(Schedule.spaced("100 millis")),
          Effect.timeout("15 seconds"),
        )
        yield* Effect.sleep("1500 millis")
        const held = yield* watermarkOf(sql)
        console.log(`prepared transaction ${txid}: watermark ${held} while it is prepared`)
        expect(held! <= txid).toBe(true)

        yield* Fiber.interrupt(wal)
        yield* Effect.promise(() => client.query("COMMIT PREPARED 'relay_watermark'"))
        yield* runRelay(relayConfigFor(db, { mode: "poll" })).pipe(Effect.provide(layer), Effect.forkScoped)
        yield* kafka.waitFor([prepared])
        yield* watermarkOf(sql).pipe(
          Effect.filterOrFail((w) => w !== undefined && w > txid),
          Effect.retry(Schedule.spaced("100 millis")),
          Effect.timeout("15 seconds"),
        )
      }),
    { timeout: 60_000 },
  )
})
