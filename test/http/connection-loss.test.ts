/**
 * A keyed write whose database connection is lost: answered 503 with Retry-After, and a retry with
 * the same key executes the write exactly once.
 */
import { describe, expect } from "bun:test"
import { SqlClient } from "@effect/sql"
import { Deferred, Effect, Fiber, Redacted, Schedule } from "effect"
import { createTenant } from "../../src/http/tenants.ts"
import { effectTest } from "../support/effect.ts"
import { uniqueId } from "../support/ids.ts"
import { addMinerBody, poolOn, scratchTenant, startApi } from "./support.ts"

const unavailable = "https://hashinsight.dev/problems/unavailable"
/** A scratch tenant, statements run there as the operator, and its writes counted by user. */
const setup = Effect.gen(function* () {
  const scratch = yield* scratchTenant
  const query = <A extends object = Record<string, unknown>>(statement: string) =>
    scratch.inScratch(Effect.flatMap(SqlClient.SqlClient, (sql) => sql.unsafe<A>(statement)))
  const executed = (userId: string) =>
    Effect.map(
      query<{ miners: number; events: number; records: number }>(`SELECT
        (SELECT count(*)::int FROM miners WHERE user_id = '${userId}') AS miners,
        (SELECT count(*)::int FROM event_outbox WHERE type = 'MinerAdded' AND payload->>'userId' = '${userId}') AS events,
        (SELECT count(*)::int FROM idempotency_records WHERE idempotency_key = '${userId}' AND state = 'completed') AS records`),
      (rows) => rows[0]!,
    )
  /**
   * Runs `statement` in a transaction of the test's own that stays open (holding its locks) until
   * the returned effect is run, or the test ends.
   */
  const holding = (statement: string) =>
    Effect.gen(function* () {
      const held = yield* Deferred.make<void>()
      const release = yield* Deferred.make<void>()
      yield* scratch
        .inScratch(
          Effect.flatMap(SqlClient.SqlClient, (sql) =>
            sql.withTransaction(
              sql
                .unsafe(statement)
                .pipe(
                  Effect.zipRight(Deferred.succeed(held, undefined)),
                  Effect.zipRight(Deferred.await(release)),
                ),
            ),
          ),
        )
        .pipe(Effect.forkScoped)
      yield* Deferred.await(held)
      return Deferred.succeed(release, undefined)
    })
  /** The pid of the one backend that matches `where` in pg_stat_activity, once there is one. */
  const backendWhere = (where: string) =>
    query<{ pid: number }>(
      `SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() AND ${where}`,
    ).pipe(
      Effect.filterOrFail((rows) => rows.length === 1),
      Effect.retry(Schedule.spaced("20 millis").pipe(Schedule.upTo("10 seconds"))),
      Effect.map((rows) => rows[0]!.pid),
    )
  /** Ends a backend as pg_terminate_backend does (what a server shutdown does to every session). */
  const terminate = (pid: number) => query(`SELECT pg_terminate_backend(${pid}, 10000)`)
  return { ...scratch, query, executed, holding, backendWhere, terminate }
})

const postAs =
  (
    api: { call: (path: string, init: RequestInit & { key?: string }) => Effect.Effect<unknown> },
    key: string,
  ) =>
  (idempotencyKey: string) =>
    api.call("/api/miners", {
      method: "POST",
      key,
      body: addMinerBody({ userId: idempotencyKey }),
      headers: { "idempotency-key": idempotencyKey },
    }) as Effect.Effect<{ status: number; headers: Headers; json: unknown; text: string }>

const problemOf = (reply: { status: number; headers: Headers; json: unknown }) => ({
  status: reply.status,
  retryAfter: reply.headers.get("retry-after"),
  type: (reply.json as { type?: string }).type,
  detail: (reply.json as { detail?: string }).detail,
})

describe("a write whose database connection is lost", () => {
  effectTest(
    "at the tenant lookup: 503; the request waiting for that connection gets a working one; the retry executes once",
    () =>
      Effect.gen(function* () {
        const t = yield* setup
        // One pooled connection, and every request looks its tenant up.
        const api = yield* startApi(poolOn(t.db.url, { dbPoolMax: 1 }), { keyTtl: 0 })
        const post = postAs(api, t.key)
        // Another tenant's request: concurrent lookups of one key share their outcome.
        const other = yield* t.inScratch(createTenant(uniqueId("other-tenant")))
        const postOther = postAs(api, Redacted.value(other.apiKey))
        const release = yield* t.holding("LOCK TABLE tenants IN ACCESS EXCLUSIVE MODE")
        const first = yield* Effect.fork(post("k-lookup"))
        const lookup = yield* t.backendWhere("wait_event_type = 'Lock' AND query LIKE '%FROM tenants%'")
        // The next request waits for the pool's one connection, which the lookup holds.
        const next = yield* Effect.fork(postOther("k-next"))
        yield* Effect.sleep("200 millis")
        yield* t.terminate(lookup)
        yield* release
        expect(problemOf(yield* Fiber.join(first))).toEqual({
          status: 503,
          retryAfter: "1",
          type: unavailable,
          detail: "the tenant store is unavailable",
        })
        expect((yield* Fiber.join(next)).status).toBe(201)

        expect(yield* t.executed("k-lookup")).toEqual({ miners: 0, events: 0, records: 0 })
        const retried = yield* post("k-lookup")
        expect([retried.status, retried.headers.get("idempotent-replayed")]).toEqual([201, null])
        expect(yield* t.executed("k-lookup")).toEqual({ miners: 1, events: 1, records: 1 })
        expect(yield* t.executed("k-next")).toEqual({ miners: 1, events: 1, records: 1 })
      }),
  )
})
