/**
 * The chaos audit fails when it should: run against stand-ins written here (no switch in production
 * code), a consumer that applies its effect without the inbox and a relay that counts a batch
 * delivered before Kafka has it, each SIGKILLed mid-stream, it reports duplicate effects and loss.
 */
import { describe, expect } from "bun:test"
import { join } from "node:path"
import { SqlClient } from "@effect/sql"
import type { Subprocess } from "bun"
import { Duration, Effect, Layer } from "effect"
import { audit } from "../../bench/chaos/audit.ts"
import type { LoadReport, WriteOutcome } from "../../bench/chaos/load.ts"
import { Outbox } from "../../src/engine/outbox.ts"
import { runRelay } from "../../src/engine/relay/index.ts"
import { recordTreasuryTransaction } from "../../src/hashinsight/treasury/record-transaction.ts"
import { createTenant } from "../../src/http/tenants.ts"
import { eventually } from "../support/consumer-fixtures.ts"
import { startGroupAtEnd } from "../support/e2e-platform.ts"
import { effectTest } from "../support/effect.ts"
import { uniqueId } from "../support/ids.ts"
import { collectTopic, relayConfigFor, relayDatabase } from "../support/relay-kit.ts"

const standIn = (script: string, db: { url: string }, args: ReadonlyArray<string> = []) =>
  Effect.acquireRelease(
    Effect.sync(() => {
      let out = ""
      const proc = Bun.spawn([process.execPath, join(import.meta.dir, "stand-ins", script), ...args], {
        env: { ...process.env, DATABASE_URL: db.url, NODE_NO_WARNINGS: "1" },
        stdout: "pipe",
        stderr: "inherit",
      })
      void (async () => {
        for await (const chunk of proc.stdout) out += new TextDecoder().decode(chunk)
      })()
      return { proc, output: () => out }
    }),
    ({ proc }) => Effect.sync(() => proc.kill("SIGKILL")),
  )

const kill = (proc: Subprocess) =>
  Effect.sync(() => proc.kill("SIGKILL")).pipe(Effect.zipRight(Effect.promise(() => proc.exited)))

/** `n` treasury writes of the tenant, as the chaos load makes them (`at` is each one's marker). */
const writeTreasury = (tenantId: string, from: number, n: number) =>
  Effect.forEach(
    Array.from({ length: n }, (_, i) => from + i),
    (i) =>
      Effect.gen(function* () {
        const at = new Date(Date.UTC(2100, 0, 1) + i).toISOString()
        const userId = `user-${i % 4}`
        yield* recordTreasuryTransaction(tenantId, { userId, kind: "deposit", btc: 0.5, at: new Date(at) })
        yield* Effect.sleep(Duration.millis(20))
        return {
          write: {
            key: `k-${i}`,
            kind: "treasury",
            user: userId,
            path: "/api/treasury/transactions",
            body: {},
            marker: at,
            btcDelta: 0.5,
          },
          accepted: true,
          refused: undefined,
          attempts: 1,
        } satisfies WriteOutcome
      }),
  )

const loadOf = (outcomes: ReadonlyArray<WriteOutcome>): LoadReport => ({
  outcomes,
  serverErrors: [],
  resent: 0,
  resentReplayed: 0,
  shed: 0,
})

describe("the chaos audit", () => {
  effectTest(
    "reports duplicate effects of a consumer that applies its effect without the inbox, SIGKILLed mid-stream",
    () =>
      Effect.gen(function* () {
        const db = yield* relayDatabase
        const services = Layer.merge(db.layer, Outbox.layer)
        const tenant = yield* createTenant(uniqueId("audit")).pipe(Effect.provide(db.layer))
        const group = uniqueId("no-inbox")
        yield* startGroupAtEnd(group, ["events.treasury"])
        const reader = yield* collectTopic("events.treasury")
        yield* Effect.forkScoped(
          runRelay(relayConfigFor(db, { mode: "poll" })).pipe(Effect.provide(db.layer)),
        )
        const started = Date.now()
        const consumer = yield* standIn("ledger-without-inbox.ts", db, [group])
        const ledgerRows = Effect.flatMap(SqlClient.SqlClient, (sql) =>
          Effect.map(
            sql<{ n: number; distinct: number }>`
              SELECT count(*)::int AS n, count(DISTINCT event_id)::int AS distinct
              FROM portfolio_ledger WHERE tenant_id = ${tenant.id}`,
            ([r]) => r!,
          ),
        ).pipe(Effect.provide(db.layer))

        const first = yield* writeTreasury(tenant.id, 0, 30).pipe(Effect.provide(services))
        yield* eventually(
          Effect.map(ledgerRows, (r) => r.n >= 20),
          Duration.seconds(90),
        )
        yield* kill(consumer.proc)
        console.log(
          `stand-in without an inbox: SIGKILLed ${Date.now() - started} ms in, with ${(yield* ledgerRows).n} applied`,
        )
        yield* standIn("ledger-without-inbox.ts", db, [group])
        const second = yield* writeTreasury(tenant.id, 30, 20).pipe(Effect.provide(services))
        yield* eventually(
          Effect.map(ledgerRows, (r) => r.distinct === 50 && r.n > r.distinct),
          Duration.seconds(120),
        )
        yield* reader.drain

        const result = yield* audit({
          tenantId: tenant.id,
          load: loadOf([...first, ...second]),
          received: reader.received,
          webhook: [],
          poison: [],
        }).pipe(Effect.provide(db.layer))
        console.log(`stand-in without an inbox: ${result.problems.join("; ")}`)
        expect(result.duplicateEffects).toBeGreaterThanOrEqual(20)
        expect(result.problems.some((p) => p.includes("applied to the ledger more than once"))).toBe(true)
      }),
    { timeout: 240_000 },
  )

  effectTest(
    "reports loss when a relay that counts a batch delivered before Kafka acknowledged it is SIGKILLed",
    () =>
      Effect.gen(function* () {
        const db = yield* relayDatabase
        const services = Layer.merge(db.layer, Outbox.layer)
        const tenant = yield* createTenant(uniqueId("audit")).pipe(Effect.provide(db.layer))
        const reader = yield* collectTopic("events.treasury")
        const relay = yield* standIn("relay-acking-early.ts", db)
        const writes = yield* Effect.fork(writeTreasury(tenant.id, 0, 40).pipe(Effect.provide(services)))
        yield* eventually(
          Effect.sync(() => (relay.output().match(/marked/g) ?? []).length >= 2),
          Duration.seconds(30),
        )
        yield* kill(relay.proc)
        const outcomes = yield* writes.await.pipe(Effect.flatten)
        // Whatever it marked is lost for good: no relay sends a row marked published again.
        yield* Effect.sleep(Duration.seconds(1))
        yield* reader.drain

        const result = yield* audit({
          tenantId: tenant.id,
          load: loadOf(outcomes),
          received: reader.received,
          webhook: [],
          poison: [],
        }).pipe(Effect.provide(db.layer))
        console.log(`stand-in relay acking early: ${result.problems.join("; ")}`)
        expect(result.lost).toBeGreaterThan(0)
        expect(result.problems.some((p) => p.includes("committed events not in Kafka"))).toBe(true)
      }),
    { timeout: 120_000 },
  )
})
