/**
 * Migration 010's NOTIFY trigger costs every writer a cluster-wide commit lock, so it is on only
 * while a polling relay leads. Toggling takes an ACCESS EXCLUSIVE lock, hence the short lock
 * timeout: queued behind a long transaction it would block every writer. On failure the poller
 * still runs on its interval.
 */
import { SqlClient } from "@effect/sql"
import { Deferred, Effect, Queue, Redacted } from "effect"
import pg from "pg"
import { type RelayConfig, wakeupChannel } from "./config.ts"

export const setWakeupTrigger = (enabled: boolean) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const rows = yield* sql<{ enabled: boolean }>`
      SELECT tgenabled <> 'D' AS enabled FROM pg_trigger
      WHERE tgname = 'event_outbox_wakeup' AND tgrelid = 'event_outbox'::regclass`
    if (rows.length === 0 || rows[0]?.enabled === enabled) return
    yield* sql.withTransaction(
      Effect.gen(function* () {
        yield* sql`SET LOCAL lock_timeout = '2s'`
        yield* sql.unsafe(
          `ALTER TABLE event_outbox ${enabled ? "ENABLE" : "DISABLE"} TRIGGER event_outbox_wakeup`,
        )
      }),
    )
  }).pipe(
    Effect.catchAll((e) => Effect.logWarning(`could not switch the outbox wake-up trigger: ${e.message}`)),
    Effect.withSpan("Relay.setWakeupTrigger"),
  )

/**
 * Wake-ups as a sliding queue of one, fed by a LISTEN session of its own. Not `PgClient.listen`:
 * it drops notifications whose payload is empty, and the trigger's are. A session that cannot
 * listen or breaks only costs latency: the poller keeps running on its interval.
 */
export const wakeups = (config: RelayConfig) =>
  Effect.gen(function* () {
    const wake = yield* Queue.sliding<void>(1)
    const onWake = () => Queue.unsafeOffer(wake, undefined)
    const broken = yield* Deferred.make<unknown>()
    yield* Deferred.await(broken).pipe(
      Effect.flatMap((e) =>
        Effect.logWarning(`LISTEN ${wakeupChannel} session lost; polling on the interval: ${e}`),
      ),
      Effect.forkScoped,
    )
    yield* Effect.acquireRelease(
      Effect.tryPromise(async () => {
        const client = new pg.Client({
          connectionString: Redacted.value(config.databaseUrl),
          application_name: `hashinsight-relay-wakeup:${config.slot}`,
        })
        client.on("error", (e) => Deferred.unsafeDone(broken, Effect.succeed(e)))
        client.on("notification", onWake)
        await client.connect()
        await client.query(`LISTEN ${pg.escapeIdentifier(wakeupChannel)}`)
        return client
      }),
      (client) =>
        Effect.promise(() => client.end().catch(() => undefined)).pipe(
          // A release is uninterruptible: without this the timeout could not cut the wait short.
          Effect.interruptible,
          Effect.timeout("5 seconds"),
          Effect.ignore,
        ),
    ).pipe(
      Effect.catchAll((e) =>
        Effect.logWarning(`LISTEN ${wakeupChannel} failed; polling on the interval: ${e.message}`),
      ),
    )
    return wake
  })
