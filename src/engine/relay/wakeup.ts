/**
 * Migration 010's NOTIFY trigger costs every writer a cluster-wide commit lock, so it is on only
 * while a polling relay leads. Toggling takes an ACCESS EXCLUSIVE lock, hence the short lock
 * timeout: queued behind a long transaction it would block every writer. On failure the poller
 * still runs on its interval.
 */
import { SqlClient } from "@effect/sql"
import { Effect } from "effect"

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
