import { describe, expect } from "bun:test"
import { createHash } from "node:crypto"
import { SqlClient } from "@effect/sql"
import { PgClient } from "@effect/sql-pg"
import { Deferred, Effect, Fiber, Redacted } from "effect"
import { IdempotencyStore } from "../../src/http/idempotency-store.ts"
import { effectTest } from "../support/effect.ts"
import { uniqueId } from "../support/ids.ts"
import { addMinerBody, newTenant, scratchTenant, startApi } from "./support.ts"

const countFor = (tenantId: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.map(
      sql<{ miners: number; events: number }>`SELECT
        (SELECT count(*)::int FROM miners WHERE tenant_id = ${tenantId}) AS miners,
        (SELECT count(*)::int FROM event_outbox WHERE tenant_id = ${tenantId} AND type = 'MinerAdded') AS events`,
      (rows) => rows[0]!,
    ),
  )

describe("Idempotency-Key", () => {
  effectTest(
    "100 concurrent requests with one key execute once; the rest get 409 or the identical replay",
    () =>
      Effect.gen(function* () {
        const api = yield* startApi()
        const t = yield* newTenant
        const body = addMinerBody({ userId: "racer" })
        const headers = { "idempotency-key": uniqueId("race") }
        const replies = yield* Effect.all(
          Array.from({ length: 100 }, () =>
            api.call("/api/miners", { method: "POST", key: t.key, body, headers }),
          ),
          { concurrency: "unbounded" },
        )
        expect(yield* countFor(t.id)).toEqual({ miners: 1, events: 1 })
        const created = replies.filter((r) => r.status === 201)
        const conflicts = replies.filter((r) => r.status === 409)
        expect(created.length + conflicts.length).toBe(100)
        expect(created.filter((r) => r.headers.get("idempotent-replayed") === null)).toHaveLength(1)
        expect(new Set(created.map((r) => r.text)).size).toBe(1)
        for (const c of conflicts) {
          expect((c.json as { type: string }).type).toBe(
            "https://hashinsight.dev/problems/idempotency-in-flight",
          )
        }

        const replay = yield* api.call("/api/miners", { method: "POST", key: t.key, body, headers })
        expect(replay.status).toBe(201)
        expect(replay.headers.get("idempotent-replayed")).toBe("true")
        expect(replay.text).toBe(created[0]!.text)

        const reused = yield* api.call("/api/miners", {
          method: "POST",
          key: t.key,
          body: addMinerBody({ userId: "racer", count: 4 }),
          headers,
        })
        expect(reused.status).toBe(422)
        expect((reused.json as { type: string }).type).toBe(
          "https://hashinsight.dev/problems/idempotency-key-reused",
        )
        expect(yield* countFor(t.id)).toEqual({ miners: 1, events: 1 })
      }),
    { timeout: 30_000 },
  )

  effectTest("concurrent replays of a completed key all get the stored response, none a 409", () =>
    Effect.gen(function* () {
      const api = yield* startApi()
      const t = yield* newTenant
      const body = addMinerBody({ userId: "replayer" })
      const headers = { "idempotency-key": uniqueId("replays") }
      const first = yield* api.call("/api/miners", { method: "POST", key: t.key, body, headers })
      expect(first.status).toBe(201)
      const replies = yield* Effect.all(
        Array.from({ length: 50 }, () =>
          api.call("/api/miners", { method: "POST", key: t.key, body, headers }),
        ),
        { concurrency: "unbounded" },
      )
      expect(replies.map((r) => [r.status, r.headers.get("idempotent-replayed"), r.text])).toEqual(
        replies.map(() => [201, "true", first.text]),
      )
      expect(yield* countFor(t.id)).toEqual({ miners: 1, events: 1 })
    }),
  )

  effectTest("a rejected write is recorded: its replay is the identical 422", () =>
    Effect.gen(function* () {
      const api = yield* startApi()
      const t = yield* newTenant
      const body = addMinerBody({ modelId: "no-such-model" })
      const headers = { "idempotency-key": uniqueId("reject") }
      const first = yield* api.call("/api/miners", { method: "POST", key: t.key, body, headers })
      const again = yield* api.call("/api/miners", { method: "POST", key: t.key, body, headers })
      expect(first.status).toBe(422)
      expect([again.status, again.text, again.headers.get("idempotent-replayed")]).toEqual([
        422,
        first.text,
        "true",
      ])
      expect(yield* countFor(t.id)).toEqual({ miners: 0, events: 0 })
    }),
  )

  effectTest("an expired key executes again; expired records are purged; a crashed claim is taken over", () =>
    Effect.gen(function* () {
      const api = yield* startApi()
      const sql = yield* SqlClient.SqlClient
      const t = yield* newTenant
      const key = uniqueId("expiry")
      const post = (body: string) =>
        api.call("/api/miners", { method: "POST", key: t.key, body, headers: { "idempotency-key": key } })
      expect((yield* post(addMinerBody())).status).toBe(201)
      yield* sql`UPDATE idempotency_records SET expires_at = now() - interval '1 second'
        WHERE tenant_id = ${t.id} AND idempotency_key = ${key}`
      const fresh = yield* post(addMinerBody({ count: 9 }))
      expect([fresh.status, fresh.headers.get("idempotent-replayed")]).toEqual([201, null])
      expect(yield* countFor(t.id)).toEqual({ miners: 2, events: 2 })

      yield* sql`UPDATE idempotency_records SET expires_at = now() - interval '1 second'
        WHERE tenant_id = ${t.id} AND idempotency_key = ${key}`
      const purged = yield* Effect.flatMap(IdempotencyStore, (s) => s.purgeExpired).pipe(
        Effect.provide(IdempotencyStore.layer),
      )
      expect(purged).toBeGreaterThanOrEqual(1)
      expect(yield* sql`SELECT 1 FROM idempotency_records WHERE tenant_id = ${t.id}`).toEqual([])

      // A claim whose process died mid-request: in flight for longer than the lease.
      const crashed = uniqueId("crashed")
      const body = addMinerBody({ count: 5 })
      const fingerprint = createHash("sha256").update("POST\n/api/miners\n").update(body).digest("hex")
      yield* sql`INSERT INTO idempotency_records (tenant_id, idempotency_key, fingerprint, state, created_at)
        VALUES (${t.id}, ${crashed}, ${fingerprint}, 'in_flight', now() - interval '2 minutes')`
      const taken = yield* api.call("/api/miners", {
        method: "POST",
        key: t.key,
        body,
        headers: { "idempotency-key": crashed },
      })
      expect(taken.status).toBe(201)
      expect(yield* countFor(t.id)).toEqual({ miners: 3, events: 3 })

      // A write rejected (422) after either kind of re-claim is recorded with it: the re-claim is
      // not undone with the write.
      const rejected = addMinerBody({ modelId: "no-such-model" })
      const rejectedPrint = createHash("sha256").update("POST\n/api/miners\n").update(rejected).digest("hex")
      for (const [label, setup] of [
        [
          "expired",
          (k: string) => sql`INSERT INTO idempotency_records (tenant_id, idempotency_key, fingerprint, state,
              response_status, response_body, completed_at, expires_at)
            VALUES (${t.id}, ${k}, ${rejectedPrint}, 'completed', 201, '{}', now(), now() - interval '1 second')`,
        ],
        [
          "taken over",
          (
            k: string,
          ) => sql`INSERT INTO idempotency_records (tenant_id, idempotency_key, fingerprint, state, created_at)
            VALUES (${t.id}, ${k}, ${rejectedPrint}, 'in_flight', now() - interval '2 minutes')`,
        ],
      ] as const) {
        const k = uniqueId(label.replace(" ", "-"))
        yield* setup(k)
        const headers = { "idempotency-key": k }
        const first = yield* api.call("/api/miners", { method: "POST", key: t.key, body: rejected, headers })
        const replay = yield* api.call("/api/miners", { method: "POST", key: t.key, body: rejected, headers })
        expect([label, first.status]).toEqual([label, 422])
        expect([label, replay.status, replay.text, replay.headers.get("idempotent-replayed")]).toEqual([
          label,
          422,
          first.text,
          "true",
        ])
      }
      expect(yield* countFor(t.id)).toEqual({ miners: 3, events: 3 })
    }),
  )

  effectTest(
    "store unavailable → 503 and nothing executed; a failed completion rolls the write back",
    () =>
      Effect.gen(function* () {
        const { db, inScratch, tenant, key } = yield* scratchTenant
        const api = yield* startApi(db.url)
        const exec = (statement: string) =>
          inScratch(Effect.flatMap(SqlClient.SqlClient, (sql) => sql.unsafe(statement)))
        const counts = inScratch(countFor(tenant.id))
        const post = (idempotencyKey: string) =>
          api.call("/api/miners", {
            method: "POST",
            key,
            body: addMinerBody(),
            headers: { "idempotency-key": idempotencyKey },
          })

        // The claim cannot be taken at all.
        yield* exec("REVOKE ALL ON idempotency_records FROM hashinsight_app")
        const noStore = yield* post("k-no-store")
        expect([noStore.status, (noStore.json as { type: string }).type]).toEqual([
          503,
          "https://hashinsight.dev/problems/unavailable",
        ])
        expect(noStore.headers.get("retry-after")).toBe("1")
        expect(yield* counts).toEqual({ miners: 0, events: 0 })

        // The claim is taken but the completion fails: the write in the same transaction rolls back.
        yield* exec("GRANT SELECT, INSERT, DELETE ON idempotency_records TO hashinsight_app")
        const noComplete = yield* post("k-no-complete")
        expect(noComplete.status).toBe(503)
        expect(yield* counts).toEqual({ miners: 0, events: 0 })
        expect(yield* exec("SELECT idempotency_key FROM idempotency_records")).toEqual([])

        // Store back: the retry with the same key executes exactly once.
        yield* exec("GRANT UPDATE ON idempotency_records TO hashinsight_app")
        expect((yield* post("k-no-complete")).status).toBe(201)
        expect((yield* post("k-no-complete")).headers.get("idempotent-replayed")).toBe("true")
        expect(yield* counts).toEqual({ miners: 1, events: 1 })
      }),
    { timeout: 30_000 },
  )

  effectTest(
    "every pooled connection busy past the wait → 503 naming the overload, Retry-After, nothing executed; the retry executes once",
    () =>
      Effect.gen(function* () {
        const { db, inScratch, tenant, key } = yield* scratchTenant
        // One connection, one second's wait for it (production: DB_POOL_MAX, 5 s).
        const api = yield* startApi(
          PgClient.layer({ url: Redacted.make(db.url), maxConnections: 1, connectTimeout: "1 second" }),
        )
        const post = (idempotencyKey: string) =>
          api.call("/api/miners", {
            method: "POST",
            key,
            body: addMinerBody({ userId: idempotencyKey }),
            headers: { "idempotency-key": idempotencyKey },
          })

        // The first write holds the only connection, waiting on a lock the test holds on miners.
        const locked = yield* Deferred.make<void>()
        const release = yield* Deferred.make<void>()
        yield* inScratch(
          Effect.flatMap(SqlClient.SqlClient, (sql) =>
            sql.withTransaction(
              sql`LOCK TABLE miners IN ACCESS EXCLUSIVE MODE`.pipe(
                Effect.zipRight(Deferred.succeed(locked, undefined)),
                Effect.zipRight(Deferred.await(release)),
              ),
            ),
          ),
        ).pipe(Effect.forkScoped)
        yield* Deferred.await(locked)
        const first = yield* Effect.fork(post("k-holder"))
        yield* Effect.sleep("200 millis")
        const second = yield* post("k-waiter")
        expect(second.status).toBe(503)
        expect(second.headers.get("retry-after")).toBe("1")
        expect(second.headers.get("content-type")).toStartWith("application/problem+json")
        expect((second.json as { detail: string }).detail).toBe(
          "the API is overloaded: every database connection stayed busy past the wait; nothing was executed",
        )

        yield* Deferred.succeed(release, undefined)
        expect((yield* Fiber.join(first)).status).toBe(201)
        expect((yield* post("k-waiter")).status).toBe(201)
        expect(yield* inScratch(countFor(tenant.id))).toEqual({ miners: 2, events: 2 })
      }),
    { timeout: 30_000 },
  )
})
