/**
 * A keyed write whose database connection is lost at each step where it can be: the tenant lookup,
 * the idempotency completion, the COMMIT before the server has it and after it committed. Each is
 * answered 503 with Retry-After, and a retry with the same key executes the write exactly once.
 * Only a loss during the COMMIT leaves the outcome open, and its 503 says so.
 */
import { describe, expect } from "bun:test"
import { SqlClient } from "@effect/sql"
import { Deferred, Effect, Fiber, Redacted, Schedule } from "effect"
import { createTenant } from "../../src/http/tenants.ts"
import { effectTest } from "../support/effect.ts"
import { uniqueId } from "../support/ids.ts"
import { pgProxy } from "../support/pg-proxy.ts"
import { type Api, addMinerBody, poolOn, type Reply, scratchTenant, startApi } from "./support.ts"

const unavailable = "https://hashinsight.dev/problems/unavailable"
const mayHaveExecuted =
  "the database connection was lost while the write committed: it may have been executed; retry with the same Idempotency-Key to learn its outcome"

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
  /** Waits until no backend holds a key's claim: a connection the server has not noticed is lost. */
  const claimsReleased = query<{ n: number }>(
    "SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory' AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
  ).pipe(
    Effect.filterOrFail((rows) => rows[0]!.n === 0),
    Effect.retry(Schedule.spaced("20 millis").pipe(Schedule.upTo("10 seconds"))),
  )
  return { ...scratch, query, executed, holding, backendWhere, terminate, claimsReleased }
})

const postAs = (api: Api, key: string) => (idempotencyKey: string) =>
  api.call("/api/miners", {
    method: "POST",
    key,
    body: addMinerBody({ userId: idempotencyKey }),
    headers: { "idempotency-key": idempotencyKey },
  })

const problemOf = (reply: Reply) => ({
  status: reply.status,
  retryAfter: reply.headers.get("retry-after"),
  type: (reply.json as { type?: string }).type,
  detail: (reply.json as { detail?: string }).detail,
})

describe("a write whose database connection is lost", () => {
  effectTest("at the idempotency completion: 503, nothing executed; the retry executes once", () =>
    Effect.gen(function* () {
      const t = yield* setup
      const api = yield* startApi(poolOn(t.db.url))
      const post = postAs(api, t.key)
      // The completion (the record's UPDATE) waits on a lock the test holds, and is terminated there.
      yield* t.query(`CREATE FUNCTION wait_for_test() RETURNS trigger LANGUAGE plpgsql AS $$
          BEGIN PERFORM pg_advisory_xact_lock(4242); RETURN NEW; END $$`)
      yield* t.query(`CREATE TRIGGER completion_waits BEFORE UPDATE ON idempotency_records
          FOR EACH ROW EXECUTE FUNCTION wait_for_test()`)
      const release = yield* t.holding("SELECT pg_advisory_xact_lock(4242)")
      const write = yield* Effect.fork(post("k-completion"))
      yield* t.terminate(
        yield* t.backendWhere("wait_event = 'advisory' AND query LIKE '%UPDATE idempotency_records%'"),
      )
      expect(problemOf(yield* Fiber.join(write))).toEqual({
        status: 503,
        retryAfter: "1",
        type: unavailable,
        detail: "the database is unavailable; nothing was executed",
      })
      expect(yield* t.executed("k-completion")).toEqual({ miners: 0, events: 0, records: 0 })

      yield* release
      const retried = yield* post("k-completion")
      expect([retried.status, retried.headers.get("idempotent-replayed")]).toEqual([201, null])
      expect((yield* post("k-completion")).headers.get("idempotent-replayed")).toBe("true")
      expect(yield* t.executed("k-completion")).toEqual({ miners: 1, events: 1, records: 1 })
    }),
  )

  effectTest(
    "at COMMIT, before the server has it: 503 saying it may have executed; the retry executes it once",
    () =>
      Effect.gen(function* () {
        const t = yield* setup
        const proxy = yield* pgProxy(t.db.url)
        const api = yield* startApi(poolOn(proxy.url))
        const post = postAs(api, t.key)
        const cut = yield* proxy.cutNextCommit("before")
        expect(problemOf(yield* post("k-commit-before"))).toEqual({
          status: 503,
          retryAfter: "1",
          type: unavailable,
          detail: mayHaveExecuted,
        })
        yield* cut
        yield* t.claimsReleased
        expect(yield* t.executed("k-commit-before")).toEqual({ miners: 0, events: 0, records: 0 })
        const retried = yield* post("k-commit-before")
        expect([retried.status, retried.headers.get("idempotent-replayed")]).toEqual([201, null])
        expect(yield* t.executed("k-commit-before")).toEqual({ miners: 1, events: 1, records: 1 })
      }),
  )

  effectTest(
    "at COMMIT, after it committed (the reply lost): 503 saying it may have executed; the retry answers the stored response",
    () =>
      Effect.gen(function* () {
        const t = yield* setup
        const proxy = yield* pgProxy(t.db.url)
        const api = yield* startApi(poolOn(proxy.url))
        const post = postAs(api, t.key)
        const cut = yield* proxy.cutNextCommit("after")
        expect(problemOf(yield* post("k-commit-after"))).toEqual({
          status: 503,
          retryAfter: "1",
          type: unavailable,
          detail: mayHaveExecuted,
        })
        yield* cut
        expect(yield* t.executed("k-commit-after")).toEqual({ miners: 1, events: 1, records: 1 })
        const retried = yield* post("k-commit-after")
        expect([retried.status, retried.headers.get("idempotent-replayed")]).toEqual([201, "true"])
        expect(yield* t.executed("k-commit-after")).toEqual({ miners: 1, events: 1, records: 1 })
      }),
  )

  effectTest("at COMMIT of a write without a key: 503 saying it may have executed", () =>
    Effect.gen(function* () {
      const t = yield* setup
      const proxy = yield* pgProxy(t.db.url)
      const api = yield* startApi(poolOn(proxy.url))
      const cut = yield* proxy.cutNextCommit("after")
      const reply = yield* api.call("/api/miners", {
        method: "POST",
        key: t.key,
        body: addMinerBody({ userId: "no-key" }),
      })
      expect(problemOf(reply)).toEqual({
        status: 503,
        retryAfter: "1",
        type: unavailable,
        detail:
          "the database connection was lost while the write committed: it may have been executed; only writes sent with an Idempotency-Key can be retried safely",
      })
      yield* cut
      expect(yield* t.executed("no-key")).toEqual({ miners: 1, events: 1, records: 0 })
    }),
  )

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
