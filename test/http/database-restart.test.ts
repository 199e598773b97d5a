import { describe, expect } from "bun:test"
import { SqlClient } from "@effect/sql"
import { Clock, Effect, Fiber } from "effect"
import { effectTest } from "../support/effect.ts"
import { embeddedPostgres, restartPostgres } from "../support/postgres-restart.ts"
import { addMinerBody, poolOn, scratchTenant, startApi } from "./support.ts"

interface Attempt {
  readonly key: string
  readonly startedAt: number
  readonly status: number
  readonly retryAfter: string | null
  readonly contentType: string | null
  readonly type: string | undefined
  readonly detail: string | undefined
  readonly replayed: boolean
}

const mayHaveExecuted = "it may have been executed"

describe.skipIf(embeddedPostgres === undefined)("a PostgreSQL restart under keyed writes", () => {
  for (const mode of ["fast", "immediate"] as const) {
    effectTest(
      `${mode} restart, 8 writers: every failed request is a 503 with Retry-After, each retried key executes once, and requests succeed as soon as the server is back`,
      () =>
        Effect.gen(function* () {
          const { db, inScratch, tenant, key } = yield* scratchTenant
          // Each write spends 20 ms inside its transaction, so the restart always finds writes in
          // flight there: the moment that answered 500.
          yield* inScratch(
            Effect.flatMap(SqlClient.SqlClient, (sql) =>
              Effect.zipRight(
                sql.unsafe(`CREATE FUNCTION slow_write() RETURNS trigger LANGUAGE plpgsql AS $$
                  BEGIN PERFORM pg_sleep(0.02); RETURN NEW; END $$`),
                sql.unsafe(`CREATE TRIGGER slow_write BEFORE INSERT ON miners
                  FOR EACH ROW EXECUTE FUNCTION slow_write()`),
              ),
            ),
          )
          // Every request looks its tenant up (no remembered keys): the lookup meets the restart too.
          const api = yield* startApi(poolOn(db.url), { keyTtl: 0 })
          const attempts: Array<Attempt> = []
          let writing = true
          const post = (idempotencyKey: string) =>
            Effect.gen(function* () {
              const startedAt = yield* Clock.currentTimeMillis
              const reply = yield* api.call("/api/miners", {
                method: "POST",
                key,
                body: addMinerBody({ userId: idempotencyKey }),
                headers: { "idempotency-key": idempotencyKey },
              })
              const problem = reply.json as { type?: string; detail?: string } | undefined
              const attempt: Attempt = {
                key: idempotencyKey,
                startedAt,
                status: reply.status,
                retryAfter: reply.headers.get("retry-after"),
                contentType: reply.headers.get("content-type"),
                type: problem?.type,
                detail: problem?.detail,
                replayed: reply.headers.get("idempotent-replayed") === "true",
              }
              attempts.push(attempt)
              return attempt
            })
          // A writer: one key after another; a 503 is retried with the same key until it is answered.
          const writer = (n: number) =>
            Effect.gen(function* () {
              for (let i = 0; writing; i++) {
                const idempotencyKey = `${mode}-${n}-${i}`
                for (let tries = 0; (yield* post(idempotencyKey)).status === 503; tries++) {
                  if (tries === 100) return yield* Effect.dieMessage(`${idempotencyKey}: 503 100 times`)
                  yield* Effect.sleep("50 millis")
                }
              }
            })
          // And a reader beside them: reads meet the restart in their transactions too.
          const reads: Array<{ readonly status: number; readonly retryAfter: string | null }> = []
          const reader = Effect.gen(function* () {
            while (writing) {
              const reply = yield* api.call("/api/miners?userId=nobody", { key })
              reads.push({ status: reply.status, retryAfter: reply.headers.get("retry-after") })
              if (reply.status === 503) yield* Effect.sleep("50 millis")
            }
          })
          const writers = yield* Effect.fork(
            Effect.all([reader, ...Array.from({ length: 8 }, (_, n) => writer(n))], {
              concurrency: "unbounded",
            }),
          )
          yield* Effect.sleep("1 second")
          yield* restartPostgres(mode)
          const backAt = yield* Clock.currentTimeMillis
          // The suite's own pool answers at once too: its idle connections of before were dropped.
          const suite = yield* SqlClient.SqlClient
          expect(yield* suite`SELECT 1 AS one`).toEqual([{ one: 1 }])
          yield* Effect.sleep("1500 millis")
          writing = false
          yield* Fiber.join(writers)

          const failed = attempts.filter((a) => a.status !== 201)
          expect(failed.length).toBeGreaterThan(0)
          expect(
            failed.filter(
              (a) =>
                a.status !== 503 ||
                a.retryAfter !== "1" ||
                !a.contentType?.startsWith("application/problem+json") ||
                a.type !== "https://hashinsight.dev/problems/unavailable",
            ),
          ).toEqual([])
          expect(reads.filter((r) => r.status !== 200 && (r.status !== 503 || r.retryAfter !== "1"))).toEqual(
            [],
          )
          // Once the server accepts connections again, no request fails on a connection of before
          // (given a moment: a request may join a tenant lookup that started while it was down).
          expect(attempts.filter((a) => a.startedAt > backAt + 100 && a.status !== 201)).toEqual([])

          // Each key was answered 201 once after its 503s. It was a replay only where a 503 said the
          // write may have been executed (lost during its COMMIT); "nothing was executed" held.
          const byKey = new Map<string, Array<Attempt>>()
          for (const a of attempts) byKey.set(a.key, [...(byKey.get(a.key) ?? []), a])
          for (const [k, tries] of byKey) {
            const last = tries.at(-1)!
            expect([k, last.status]).toEqual([k, 201])
            if (last.replayed)
              expect([k, tries.some((a) => a.detail?.includes(mayHaveExecuted))]).toEqual([k, true])
          }
          const rows = yield* inScratch(
            Effect.flatMap(
              SqlClient.SqlClient,
              (sql) => sql<{ key: string; miners: number; events: number }>`
                SELECT k.key,
                  (SELECT count(*)::int FROM miners WHERE tenant_id = ${tenant.id} AND user_id = k.key) AS miners,
                  (SELECT count(*)::int FROM event_outbox WHERE tenant_id = ${tenant.id}
                    AND type = 'MinerAdded' AND payload->>'userId' = k.key) AS events
                FROM unnest(${[...byKey.keys()]}::text[]) AS k(key)`,
            ),
          )
          expect(rows.filter((r) => r.miners !== 1 || r.events !== 1)).toEqual([])
          expect(rows).toHaveLength(byKey.size)
        }),
      { timeout: 90_000 },
    )
  }
})
