/**
 * The store behind `Idempotency-Key` (see `idempotency.ts` for the HTTP flow that uses it):
 * `idempotency_records` (migration 004), one row per tenant and key, with its SQL layer and the
 * loop that purges expired rows.
 *
 * A claim is `pg_try_advisory_xact_lock` on (tenant, key) and the in-flight record inserted with
 * `ON CONFLICT DO NOTHING`, in one statement of the caller's tenant transaction. The lock is visible
 * to every other session at once, uncommitted as the record is, so a concurrent request with the
 * same key is told "in flight" without waiting; only the lock holder ever inserts, so the insert
 * never blocks. A committed record found instead: completed + same fingerprint → its response,
 * replayed; different fingerprint → a mismatch; expired → claimed afresh. The record is completed in
 * the same transaction, so it commits (or rolls back) with the write it records.
 *
 * The lock is released only after the commit is visible, so the next holder's claim sees the
 * record; the primary key stays the final guard against a second execution. In-flight records
 * committed by the previous two-transaction protocol (rolling deploys) still answer "in flight" and
 * are taken over after `leaseSeconds`; their holder's completion then matches no row.
 */
import { SqlClient, type SqlError } from "@effect/sql"
import { Context, Duration, Effect, Layer, Schedule } from "effect"

const leaseSeconds = 60

/** A response as stored and as sent: both come from these exact bytes. */
export interface StoredResponse {
  readonly status: number
  readonly contentType: string
  readonly body: string
}

/** A claim's outcome: the key is this request's now, or another request's record answers it. */
export type Claim =
  | { readonly _tag: "Claimed" }
  | { readonly _tag: "Replay"; readonly response: StoredResponse }
  | { readonly _tag: "InFlight" }
  | { readonly _tag: "Mismatch" }

const claimed: Claim = { _tag: "Claimed" }
const inFlight: Claim = { _tag: "InFlight" }

interface RecordRow {
  readonly fingerprint: string
  readonly state: "in_flight" | "completed"
  readonly status: number | null
  readonly contentType: string | null
  readonly body: string | null
  readonly expired: boolean
  readonly stale: boolean
}

const recordColumns = (sql: SqlClient.SqlClient) =>
  sql.literal(`fingerprint, state, response_status AS status,
    response_headers->>'content-type' AS "contentType", response_body AS body,
    expires_at <= now() AS expired,
    created_at < now() - make_interval(secs => ${leaseSeconds}) AS stale`)

/** What a live record of another request says to this one: replay, mismatch or in flight. */
const answer = (record: RecordRow, fingerprint: string): Claim => {
  if (record.fingerprint !== fingerprint) return { _tag: "Mismatch" }
  if (record.state !== "completed") return inFlight
  return {
    _tag: "Replay",
    response: {
      status: record.status ?? 500,
      contentType: record.contentType ?? "application/json",
      body: record.body ?? "",
    },
  }
}

export class IdempotencyStore extends Context.Tag("hashinsight/http/IdempotencyStore")<
  IdempotencyStore,
  {
    /** Claims the key in the caller's tenant transaction; a `Claimed` key is held until it ends. */
    readonly claim: (
      tenantId: string,
      key: string,
      fingerprint: string,
    ) => Effect.Effect<Claim, SqlError.SqlError, SqlClient.SqlClient>
    /** Marks the claim completed in the caller's transaction. False when the claim was lost. */
    readonly complete: (
      tenantId: string,
      key: string,
      response: StoredResponse,
    ) => Effect.Effect<boolean, SqlError.SqlError, SqlClient.SqlClient>
    /** Deletes expired records of every tenant; runs as the connecting (operator) role. */
    readonly purgeExpired: Effect.Effect<number, SqlError.SqlError>
  }
>() {
  static readonly layer = Layer.effect(
    IdempotencyStore,
    Effect.gen(function* () {
      const operator = yield* SqlClient.SqlClient

      const claim = Effect.fn("Idempotency.claim")(function* (
        tenantId: string,
        key: string,
        fingerprint: string,
      ) {
        const sql = yield* SqlClient.SqlClient
        // A live completed record is final: answered from it without the lock, so replays never
        // contend. Otherwise the lock (CASE keeps it unevaluated for replays; volatile, so the CTE
        // runs once and before the insert reads it) and the insert in the same statement.
        const [first] = yield* sql<RecordRow & { locked: boolean | null; inserted: boolean }>`
          WITH existing AS (
            SELECT ${recordColumns(sql)} FROM idempotency_records
            WHERE tenant_id = ${tenantId} AND idempotency_key = ${key}
          ), lock AS (
            SELECT CASE WHEN NOT EXISTS (SELECT 1 FROM existing WHERE state = 'completed' AND NOT expired)
              THEN pg_try_advisory_xact_lock(hashtextextended(${tenantId}::text || ':' || ${key}::text, 0))
            END AS locked
          ), claim AS (
            INSERT INTO idempotency_records (tenant_id, idempotency_key, fingerprint, state)
            SELECT ${tenantId}::uuid, ${key}::text, ${fingerprint}::text, 'in_flight' FROM lock WHERE locked
            ON CONFLICT DO NOTHING
            RETURNING 1
          )
          SELECT existing.*, lock.locked, EXISTS (SELECT 1 FROM claim) AS inserted
          FROM lock LEFT JOIN existing ON true`
        if (!first) return inFlight
        if (first.locked === null) return answer(first, fingerprint)
        if (!first.locked) return inFlight
        if (first.inserted) return claimed
        // Under the lock with a record in the way: read it again in a new statement, whose snapshot
        // is taken under the lock and so sees whatever the previous holder committed.
        const [existing] = yield* sql<RecordRow>`SELECT ${recordColumns(sql)} FROM idempotency_records
          WHERE tenant_id = ${tenantId} AND idempotency_key = ${key}
          FOR UPDATE`
        if (!existing) return inFlight
        if (existing.expired) {
          yield* sql`DELETE FROM idempotency_records WHERE tenant_id = ${tenantId} AND idempotency_key = ${key}`
          yield* sql`INSERT INTO idempotency_records (tenant_id, idempotency_key, fingerprint, state)
            VALUES (${tenantId}, ${key}, ${fingerprint}, 'in_flight')`
          return claimed
        }
        if (existing.state === "completed" || existing.fingerprint !== fingerprint)
          return answer(existing, fingerprint)
        if (!existing.stale) return inFlight
        yield* sql`UPDATE idempotency_records SET created_at = clock_timestamp()
          WHERE tenant_id = ${tenantId} AND idempotency_key = ${key}`
        return claimed
      })

      const complete = Effect.fn("Idempotency.complete")(function* (
        tenantId: string,
        key: string,
        response: StoredResponse,
      ) {
        const sql = yield* SqlClient.SqlClient
        const rows = yield* sql`
          UPDATE idempotency_records
          SET state = 'completed', response_status = ${response.status},
              response_headers = ${JSON.stringify({ "content-type": response.contentType })}::jsonb,
              response_body = ${response.body}, completed_at = now()
          WHERE tenant_id = ${tenantId} AND idempotency_key = ${key} AND state = 'in_flight'
          RETURNING 1`
        return rows.length === 1
      })

      const purgeExpired = operator<{ n: number }>`
        WITH gone AS (DELETE FROM idempotency_records WHERE expires_at <= now() RETURNING 1)
        SELECT count(*)::int AS n FROM gone`.pipe(
        Effect.map((rows) => rows[0]?.n ?? 0),
        Effect.withSpan("Idempotency.purgeExpired"),
      )

      return IdempotencyStore.of({ claim, complete, purgeExpired })
    }),
  )

  /** Purges expired records now and then for as long as the layer lives. */
  static readonly layerPurge = Layer.scopedDiscard(
    Effect.gen(function* () {
      const store = yield* IdempotencyStore
      yield* store.purgeExpired.pipe(
        Effect.tap((n) => (n > 0 ? Effect.logInfo(`purged ${n} expired idempotency records`) : Effect.void)),
        Effect.catchAll((e) => Effect.logWarning("idempotency purge failed", e)),
        Effect.repeat(Schedule.spaced(Duration.minutes(10))),
        Effect.forkScoped,
      )
    }),
  )
}
