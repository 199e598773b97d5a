/**
 * The WAL relay: streams committed transactions from the permanent pgoutput slot, sends the events
 * of several transactions in one `sendBatch`, and acknowledges a transaction's commit LSN only
 * after Kafka acked it and everything before it. A restart resumes from the last acknowledged LSN.
 * What it delivered it claims in the delivered watermark (delivered.ts); rows already below the
 * watermark when it starts — a polling relay sent them after this slot's position — are skipped.
 */
import { SqlClient } from "@effect/sql"
import { Chunk, Deferred, Duration, Effect, Queue, Redacted, Schedule } from "effect"
import { LogicalReplicationService, type Pgoutput, PgoutputPlugin } from "pg-logical-replication"
import type { KafkaProducer } from "../../platform/kafka.ts"
import type { OutboxRecord } from "../record.ts"
import type { RelayConfig } from "./config.ts"
import { readDeliveredBelow, walWatermark } from "./delivered.ts"
import { RelayError, relayError } from "./errors.ts"
import { lsnToBigInt, previousLsn } from "./lsn.ts"
import { deliver } from "./publisher.ts"
import { type OutboxRow, recordOf } from "./records.ts"
import { awaitSlotFree, ensureSlot } from "./slot.ts"
import { setWakeupTrigger } from "./wakeup.ts"

/**
 * A committed transaction: its commit LSN is safe to acknowledge once its events and every earlier
 * transaction's are in Kafka.
 */
interface Commit {
  readonly lsn: string
  /** Where its commit record ends: every transaction that committed before it is in or before it. */
  readonly end: bigint
  readonly records: ReadonlyArray<OutboxRecord>
  /** When it arrived (ms, monotonic): a batch leaves once its oldest commit has lingered enough. */
  readonly at: number
}

/** Events buffered before the stream is paused, and the level at which it resumes. */
const highWater = 100_000
const lowWater = 20_000

/** The library keeps its socket private; pausing it is the only backpressure pgoutput offers. */
type Internals = { _connection?: { stream?: { pause?: () => void; resume?: () => void } } | null }
const socketOf = (service: LogicalReplicationService) => (service as unknown as Internals)._connection?.stream

export const walRelay = (config: RelayConfig, producer: KafkaProducer) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    yield* setWakeupTrigger(false)
    const startLsn = yield* ensureSlot(config, producer)
    yield* awaitSlotFree(config.slot)
    const alreadyDelivered = yield* readDeliveredBelow.pipe(
      Effect.mapError(relayError("reading the delivered watermark")),
    )

    const service = yield* Effect.acquireRelease(
      Effect.sync(
        () =>
          new LogicalReplicationService(
            { connectionString: Redacted.value(config.databaseUrl), application_name: "hashinsight-relay" },
            { acknowledge: { auto: false, timeoutSeconds: 0 } },
          ),
      ),
      // A release is uninterruptible: without `interruptible` the timeout could not cut the wait short.
      (s) =>
        Effect.promise(() => s.destroy()).pipe(
          Effect.interruptible,
          Effect.timeout("5 seconds"),
          Effect.ignore,
        ),
    )
    const plugin = new PgoutputPlugin({ protoVersion: 1, publicationNames: [config.publication] })
    const commits = yield* Queue.unbounded<Commit>()
    const failed = yield* Deferred.make<never, RelayError>()
    const started = yield* Deferred.make<void>()

    let acked = startLsn
    let ackedCommit = startLsn
    let open: Array<OutboxRecord> | undefined
    let buffered = 0
    let paused = false
    /** Commits queued so far, and how many of them are confirmed (acknowledged, in order). */
    let queued = 0
    let confirmed = 0
    /**
     * The latest idle position: acknowledgeable once the `after` commits queued before it are. `end`
     * is the keepalive's own position, the end of the last WAL record the server decoded.
     */
    let idle: { readonly lsn: string; readonly end: bigint; readonly after: number } | undefined
    /** For the watermark: every commit ending at or before this is in Kafka, and how many events. */
    let deliveredThrough = 0n
    let deliveredEvents = 0
    const idleDelivered = () => {
      if (idle && confirmed >= idle.after && idle.end > deliveredThrough) deliveredThrough = idle.end
      return deliveredThrough
    }

    // Called synchronously per protocol message, in stream order.
    service.on("data", (_lsn: string, msg: Pgoutput.Message) => {
      if (msg.tag === "begin") open = []
      else if (msg.tag === "insert" && msg.relation.name === "event_outbox") {
        const row = msg.new as OutboxRow & { readonly txid: string }
        if (BigInt(row.txid) >= alreadyDelivered) open?.push(recordOf(row))
      } else if (msg.tag === "commit") {
        const records = open ?? []
        open = undefined
        Queue.unsafeOffer(commits, {
          lsn: msg.commitLsn ?? "0/0",
          end: lsnToBigInt(msg.commitEndLsn ?? "0/0"),
          records,
          at: performance.now(),
        })
        queued++
        buffered += records.length
        if (!paused && buffered > highWater) {
          paused = true
          socketOf(service)?.pause?.()
        }
      }
    })
    // A keepalive carries the end of the last WAL record the server decoded, which may be exactly
    // where the next, not yet sent, commit record starts. The library acknowledges `lsn + 1` and
    // the server skips commits that start before the acknowledged position, so an idle position is
    // kept one byte earlier: that next commit is still sent after a restart. The server sends a
    // keepalive after nearly every transaction; only the latest is kept and the keepalive loop
    // acknowledges it, so busy streams don't answer each one.
    service.on("heartbeat", (lsn: string) => {
      if (open === undefined) idle = { lsn: previousLsn(lsn), end: lsnToBigInt(lsn), after: queued }
    })
    service.on("start", () => Deferred.unsafeDone(started, Effect.void))
    service.on("error", (e: unknown) =>
      Deferred.unsafeDone(failed, Effect.fail(relayError("replication stream")(e))),
    )

    const acknowledge = (lsn: string, ping: boolean) =>
      Effect.promise(() => service.acknowledge(lsn, ping)).pipe(Effect.asVoid)

    const confirm = (taken: ReadonlyArray<Commit>, events: number) =>
      Effect.suspend(() => {
        buffered -= events
        if (paused && buffered < lowWater) {
          paused = false
          socketOf(service)?.resume?.()
        }
        confirmed += taken.length
        deliveredEvents += events
        const lastCommit = taken[taken.length - 1]!
        if (lastCommit.end > deliveredThrough) deliveredThrough = lastCommit.end
        const last = lastCommit.lsn
        if (lsnToBigInt(last) <= lsnToBigInt(acked)) return Effect.void
        acked = last
        if (events > 0) ackedCommit = last
        return acknowledge(acked, false)
      })

    const lingerMs = Duration.toMillis(config.linger)
    const batches = Effect.gen(function* () {
      let taken = Chunk.toReadonlyArray(yield* Queue.takeBetween(commits, 1, config.batchSize))
      const wait = lingerMs - (performance.now() - taken[0]!.at)
      if (wait > 0 && taken.length < config.batchSize) {
        yield* Effect.sleep(Duration.millis(wait))
        const more = yield* Queue.takeUpTo(commits, config.batchSize - taken.length)
        taken = [...taken, ...more]
      }
      const records = taken.flatMap((c) => c.records)
      yield* deliver(producer, records, confirm(taken, records.length))
    }).pipe(Effect.forever)

    // Standby status every second keeps wal_sender_timeout satisfied during a Kafka outage, and the
    // ping makes the server answer with a keepalive, which becomes an idle position to acknowledge
    // — so an idle slot never holds WAL. The acknowledged LSN is mirrored in relay_state.
    // Only commit positions are mirrored: mirroring idle positions would itself write WAL and keep
    // an idle relay writing forever.
    let mirrored = startLsn
    const keepalive = Effect.gen(function* () {
      if (idle && confirmed >= idle.after && lsnToBigInt(idle.lsn) > lsnToBigInt(acked)) acked = idle.lsn
      yield* acknowledge(acked, true)
      if (ackedCommit === mirrored) return
      mirrored = ackedCommit
      yield* sql`UPDATE relay_state SET acked_lsn = ${mirrored}::pg_lsn, updated_at = now()
                 WHERE name = ${config.slot}`.pipe(
        Effect.catchAll((e) => Effect.logDebug(`relay_state update failed: ${e.message}`)),
      )
    }).pipe(Effect.repeat(Schedule.spaced("1 second")))

    const stream = Effect.tryPromise({
      try: () => service.subscribe(plugin, config.slot, startLsn),
      catch: relayError("replication stream"),
    }).pipe(
      Effect.zipRight(Effect.fail(new RelayError({ reason: "replication stream ended", fatal: false }))),
    )
    yield* Effect.forkScoped(stream.pipe(Effect.catchAll((e) => Deferred.fail(failed, e))))
    yield* Deferred.await(started).pipe(Effect.raceFirst(Deferred.await(failed)))
    yield* Effect.logInfo(`relay active: mode=wal slot=${config.slot} from ${startLsn}`)
    yield* Effect.forkScoped(keepalive)
    const watermark = yield* walWatermark(`${config.slot} (wal)`, {
      through: idleDelivered,
      events: () => deliveredEvents,
    })
    // A draining relay claims what its last confirmed batch allows before it goes.
    yield* Effect.addFinalizer(() => Effect.ignore(watermark.settle))
    yield* Effect.forkScoped(watermark.loop)
    return yield* batches.pipe(Effect.raceFirst(Deferred.await(failed)))
  }).pipe(Effect.withSpan("Relay.wal"))
