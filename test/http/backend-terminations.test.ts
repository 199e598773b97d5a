/**
 * The API's database backends terminated at random moments (pg_terminate_backend, as a server
 * shutdown ends every session) while keyed and unkeyed writers and a reader run on a small pool:
 * the terminations land on every statement of a write — tenant lookup, claim, savepoint, insert,
 * outbox append, completion, COMMIT — and between them. Every request is answered 2xx or 503 with
 * Retry-After; each key executes once; an unkeyed write whose 503 does not say it may have been
 * executed has no row.
 */
import { describe, expect } from "bun:test"
import { SqlClient } from "@effect/sql"
import { Effect, Fiber } from "effect"
import { effectTest } from "../support/effect.ts"
import { addMinerBody, poolOn, scratchTenant, startApi } from "./support.ts"

interface Attempt {
  readonly userId: string
  readonly keyed: boolean
  readonly status: number
  readonly retryAfter: string | null
  readonly detail: string | undefined
  readonly replayed: boolean
}

const mayHaveExecuted = "it may have been executed"

describe("backends terminated at random under writes", () => {
  effectTest(
    "every request is answered 2xx or 503 with Retry-After; each key executes once; no write told that nothing was executed has a row",
    () =>
      Effect.gen(function* () {
        const { db, inScratch, tenant, key } = yield* scratchTenant
        const suite = yield* SqlClient.SqlClient
        const api = yield* startApi(poolOn(db.url, { dbPoolMax: 3 }), { keyTtl: 0 })
        const attempts: Array<Attempt> = []
        let running = true
        let terminated = 0

        // A request that is not answered within 20 s is a hang: status 0.
        const post = (userId: string, keyed: boolean) =>
          api
            .call("/api/miners", {
              method: "POST",
              key,
              body: addMinerBody({ userId }),
              headers: keyed ? { "idempotency-key": userId } : {},
              signal: AbortSignal.timeout(20_000),
            })
            .pipe(
              Effect.map((reply) => ({
                userId,
                keyed,
                status: reply.status,
                retryAfter: reply.headers.get("retry-after"),
                detail: (reply.json as { detail?: string } | undefined)?.detail,
                replayed: reply.headers.get("idempotent-replayed") === "true",
              })),
              Effect.catchAllDefect((d) =>
                Effect.succeed({
                  userId,
                  keyed,
                  status: 0,
                  retryAfter: null,
                  detail: String(d),
                  replayed: false,
                }),
              ),
              Effect.tap((a) => Effect.sync(() => attempts.push(a))),
            )
        // One key after another, each retried after its 503s until answered. A retry may also
        // meet a 409 for the moment the attempt before's terminated backend takes to exit (it
        // reports FATAL before it lets go of the key's lock), and is retried after that too.
        const keyedWriter = (n: number) =>
          Effect.gen(function* () {
            for (let i = 0; running; i++) {
              const userId = `k-${n}-${i}`
              for (let tries = 0; ; tries++) {
                const { status } = yield* post(userId, true)
                if (status !== 503 && (status !== 409 || tries === 0)) break
                if (tries === 300) return yield* Effect.dieMessage(`${userId}: no answer but 503 or 409`)
                yield* Effect.sleep("20 millis")
              }
            }
          })
        const unkeyedWriter = (n: number) =>
          Effect.gen(function* () {
            for (let i = 0; running; i++) yield* post(`u-${n}-${i}`, false)
          })
        const reads: Array<{ readonly status: number; readonly retryAfter: string | null }> = []
        const reader = Effect.gen(function* () {
          while (running) {
            const reply = yield* api.call("/api/miners?userId=nobody", { key })
            reads.push({ status: reply.status, retryAfter: reply.headers.get("retry-after") })
          }
        })
        const terminator = Effect.gen(function* () {
          while (running) {
            const rows = yield* suite`SELECT pg_terminate_backend(pid) FROM pg_stat_activity
              WHERE pid = (SELECT pid FROM pg_stat_activity WHERE datname = ${db.name}
                AND application_name = 'hashinsight' ORDER BY random() LIMIT 1)`
            terminated += rows.length
            yield* Effect.sleep(`${Math.floor(Math.random() * 15)} millis`)
          }
        })

        const clients = yield* Effect.fork(
          Effect.all([reader, unkeyedWriter(0), unkeyedWriter(1), ...[0, 1, 2, 3, 4].map(keyedWriter)], {
            concurrency: "unbounded",
          }),
        )
        const terminating = yield* Effect.fork(terminator)
        yield* Effect.sleep("5 seconds")
        running = false
        yield* Fiber.join(terminating)
        yield* Fiber.join(clients)

        expect(terminated).toBeGreaterThan(50)
        expect(attempts.filter((a) => a.status === 503).length).toBeGreaterThan(20)
        expect(attempts.filter((a) => a.status === 201).length).toBeGreaterThan(20)
        const seen = new Set<string>()
        const unexpected = attempts.filter((a) => {
          const retry = seen.has(a.userId)
          seen.add(a.userId)
          return !(
            a.status === 201 ||
            (a.status === 503 && a.retryAfter === "1") ||
            (a.status === 409 && a.keyed && retry)
          )
        })
        expect(unexpected).toEqual([])
        expect(reads.filter((r) => r.status !== 200 && (r.status !== 503 || r.retryAfter !== "1"))).toEqual(
          [],
        )

        const counted = yield* inScratch(
          Effect.flatMap(
            SqlClient.SqlClient,
            (sql) => sql<{ userId: string; miners: number; events: number }>`
              SELECT user_id AS "userId", count(*)::int AS miners,
                (SELECT count(*)::int FROM event_outbox o WHERE o.tenant_id = ${tenant.id}
                  AND o.type = 'MinerAdded' AND o.payload->>'userId' = m.user_id) AS events
              FROM miners m WHERE tenant_id = ${tenant.id} GROUP BY user_id`,
          ),
        )
        const executed = new Map(counted.map((c) => [c.userId, c]))
        expect(counted.filter((c) => c.miners !== c.events)).toEqual([])
        const byUser = new Map<string, Array<Attempt>>()
        for (const a of attempts) byUser.set(a.userId, [...(byUser.get(a.userId) ?? []), a])
        const wrong: Array<unknown> = []
        for (const [userId, tries] of byUser) {
          const rows = executed.get(userId)?.miners ?? 0
          if (tries[0]!.keyed) {
            if (rows !== 1) wrong.push({ userId, rows, tries, why: "a key not executed exactly once" })
            // A replay means an earlier attempt committed: one of its 503s must have said it may have.
            if (tries.at(-1)!.replayed && !tries.some((a) => a.detail?.includes(mayHaveExecuted)))
              wrong.push({ userId, tries, why: "replayed, yet every 503 said nothing was executed" })
          } else {
            const [only] = tries
            if (only!.status === 201 && rows !== 1)
              wrong.push({ userId, rows, only, why: "201 without its row" })
            // Every 503 but one cut at its COMMIT says nothing was executed (the README's contract).
            if (only!.status === 503 && !only!.detail?.includes(mayHaveExecuted) && rows !== 0)
              wrong.push({ userId, rows, only, why: "told nothing was executed, yet executed" })
          }
        }
        expect(wrong).toEqual([])
      }),
    { timeout: 90_000 },
  )
})
