/**
 * The CRM sync end to end: account and contact writes over HTTP reach the crm-sync group through
 * the relay and Kafka; it keeps the customer summary and delivers it to a webhook (a local sink
 * that answers as scripted). A CRM that fails with 5xx is retried by the group's policy until it
 * accepts; one that refuses with 4xx puts the event in the DLQ, and after the CRM is fixed
 * `bun src/bin/dlq.ts replay --id N` (a subprocess) delivers it once.
 */
import { describe, expect } from "bun:test"
import { SqlClient } from "@effect/sql"
import { Effect, Option } from "effect"
import { makeCrmSyncConsumer } from "../../src/hashinsight/consumers/crm-sync.ts"
import { cli } from "../ops/dlq-fixtures.ts"
import { dlqRows, eventually } from "../support/consumer-fixtures.ts"
import { e2eDatabase, startApiAndRelay, startConsumer, tenantClient } from "../support/e2e-platform.ts"
import { webhookSink } from "../support/e2e-webhook-sink.ts"
import { effectTest } from "../support/effect.ts"

interface DeliveryRow {
  readonly event_id: string
  readonly account_id: string
  readonly status: string
  readonly attempts: number
  readonly target_url: string | null
}

const deliveries = Effect.flatMap(
  SqlClient.SqlClient,
  (sql) => sql<DeliveryRow>`
    SELECT event_id::text, account_id, status, attempts, target_url FROM crm_deliveries ORDER BY created_at`,
)

const summaryOf = (accountId: string) =>
  Effect.flatMap(
    SqlClient.SqlClient,
    (sql) => sql<{ summary: { name: string; tier: string; contacts: ReadonlyArray<{ email: string }> } }>`
      SELECT summary FROM crm_summaries WHERE account_id = ${accountId}`,
  )

describe("crm-sync end to end", () => {
  effectTest(
    "5xx from the CRM is retried by policy until delivered; 4xx is dead-lettered and a DLQ CLI replay delivers it once",
    () =>
      Effect.gen(function* () {
        const db = yield* e2eDatabase
        const sink = yield* webhookSink
        yield* Effect.gen(function* () {
          const baseUrl = yield* startApiAndRelay(db)
          const crm = yield* startConsumer(makeCrmSyncConsumer(Effect.succeed(Option.some(sink.url))))
          const { call } = yield* tenantClient(baseUrl)
          const write = (path: string, body: unknown) =>
            Effect.tap(call("POST", path, body), (r) => expect(r.status).toBe(200))

          // A flaky CRM: two 503s, then it takes the delivery.
          sink.answer("acme", [503, 503])
          const account = (yield* write("/api/crm/accounts", {
            accountId: "acme",
            userId: "alice",
            name: "Acme Mining",
            tier: "pro",
          })).body as { eventId: string }
          yield* eventually(
            Effect.map(deliveries, (rows) => rows.some((r) => r.event_id === account.eventId)),
          )
          const delivered = (yield* deliveries).find((r) => r.event_id === account.eventId)!
          expect(delivered).toEqual({
            event_id: account.eventId,
            account_id: "acme",
            status: "delivered",
            attempts: 3,
            target_url: sink.url.toString(),
          })
          const acmeCalls = sink.requests.filter((r) => r.accountId === "acme")
          expect(acmeCalls.map((r) => r.status)).toEqual([503, 503, 200])
          // Every try carries the event id, so the CRM can tell a resend from a new change.
          expect(new Set(acmeCalls.map((r) => r.idempotencyKey))).toEqual(new Set([account.eventId]))
          expect(acmeCalls[2]!.body.summary).toMatchObject({ name: "Acme Mining", tier: "pro", contacts: [] })

          // A contact change updates the summary and is delivered at the first attempt.
          const contact = (yield* write("/api/crm/contacts", {
            contactId: "c-1",
            accountId: "acme",
            email: "ops@acme.example",
            name: "Ops Desk",
          })).body as { eventId: string }
          yield* eventually(
            Effect.map(deliveries, (rows) =>
              rows.some(
                (r) => r.event_id === contact.eventId && r.status === "delivered" && r.attempts === 1,
              ),
            ),
          )
          const [summary] = yield* summaryOf("acme")
          expect(summary!.summary.contacts.map((c) => c.email)).toEqual(["ops@acme.example"])

          // The CRM refuses this account's payload (422): no retries, straight to the DLQ.
          sink.answer("globex", [422])
          const refused = (yield* write("/api/crm/accounts", {
            accountId: "globex",
            userId: "bob",
            name: "Globex",
            tier: "institutional",
          })).body as { eventId: string }
          yield* eventually(Effect.map(dlqRows(crm.group), (rows) => rows.length === 1))
          const [dead] = yield* dlqRows(crm.group)
          expect(dead).toMatchObject({ event_id: refused.eventId, error_tag: "Fatal", attempts: 1 })
          expect(dead!.error_message).toContain("answered 422")
          expect(sink.requests.filter((r) => r.accountId === "globex")).toHaveLength(1)
          expect((yield* deliveries).some((r) => r.event_id === refused.eventId)).toBe(false)

          // The CRM side is fixed (nothing queued: it answers 200); the operator replays the entry.
          const replay = yield* cli(["replay", "--id", dead!.id], { DATABASE_URL: db.url })
          expect(replay.code).toBe(0)
          yield* eventually(Effect.map(dlqRows(crm.group), (rows) => rows[0]?.replay_status === "replayed"))
          const globexCalls = sink.requests.filter((r) => r.accountId === "globex")
          expect(globexCalls.map((r) => r.status)).toEqual([422, 200])
          expect(globexCalls[1]!.idempotencyKey).toBe(refused.eventId)
          const replayed = (yield* deliveries).filter((r) => r.event_id === refused.eventId)
          expect(replayed).toEqual([
            {
              event_id: refused.eventId,
              account_id: "globex",
              status: "delivered",
              attempts: 1,
              target_url: sink.url.toString(),
            },
          ])
        }).pipe(Effect.provide(db.layer))
      }),
    { timeout: 120_000 },
  )

  effectTest(
    "without a webhook the summaries are kept and each change is recorded as a skipped delivery",
    () =>
      Effect.gen(function* () {
        const db = yield* e2eDatabase
        yield* Effect.gen(function* () {
          const baseUrl = yield* startApiAndRelay(db)
          yield* startConsumer(makeCrmSyncConsumer(Effect.succeed(Option.none())))
          const { call } = yield* tenantClient(baseUrl)
          const upsert = yield* call("POST", "/api/crm/accounts", {
            accountId: "initech",
            userId: "carol",
            name: "Initech",
            tier: "retail",
          })
          expect(upsert.status).toBe(200)
          const eventId = (upsert.body as { eventId: string }).eventId
          yield* eventually(Effect.map(deliveries, (rows) => rows.length === 1))
          expect(yield* deliveries).toEqual([
            { event_id: eventId, account_id: "initech", status: "skipped", attempts: 1, target_url: null },
          ])
          const [summary] = yield* summaryOf("initech")
          expect(summary!.summary).toMatchObject({ name: "Initech", tier: "retail", contacts: [] })
        }).pipe(Effect.provide(db.layer))
      }),
    { timeout: 60_000 },
  )
})
