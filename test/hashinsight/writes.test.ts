import { describe, expect } from "bun:test"
import { SqlClient } from "@effect/sql"
import { Effect, Exit, Option } from "effect"
import { UnknownAccount, upsertAccount, upsertContact } from "../../src/hashinsight/crm/accounts.ts"
import { latestMarketData, updateMarketData } from "../../src/hashinsight/ops/market-data.ts"
import { reportSiteIncident } from "../../src/hashinsight/ops/site-incident.ts"
import { recordTreasuryTransaction } from "../../src/hashinsight/treasury/record-transaction.ts"
import { withTenant } from "../../src/platform/db.ts"
import { effectTest } from "../support/effect.ts"
import { uniqueId } from "../support/ids.ts"

// The test's own connection is the operator role: it sees every tenant's rows, RLS or not.
const outboxOf = (tenantId: string) =>
  Effect.flatMap(
    SqlClient.SqlClient,
    (sql) => sql<{ id: string; aggregatetype: string; aggregateid: string; type: string; payload: unknown }>`
      SELECT id, aggregatetype, aggregateid, type, payload FROM event_outbox
      WHERE tenant_id = ${tenantId} ORDER BY seq`,
  )

const count = (table: string, tenantId: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql<{ n: number }>`SELECT count(*)::int AS n FROM ${sql(table)} WHERE tenant_id = ${tenantId}`.pipe(
      Effect.map((r) => r[0]!.n),
    ),
  )

describe("treasury", () => {
  effectTest("a transaction row and its event commit together; holdings sum signed amounts", () =>
    Effect.gen(function* () {
      const tenant = crypto.randomUUID()
      const user = uniqueId("user")
      const deposit = yield* recordTreasuryTransaction(tenant, {
        userId: user,
        kind: "deposit",
        btc: 1.5,
        usd: 90_000,
        at: new Date("2025-01-02T03:04:05Z"),
      })
      yield* recordTreasuryTransaction(tenant, { userId: user, kind: "sale", btc: 0.25 })
      const events = yield* outboxOf(tenant)
      expect(events).toHaveLength(2)
      expect(events[0]).toEqual({
        id: deposit.eventId,
        aggregatetype: "treasury",
        aggregateid: user,
        type: "TreasuryTransactionRecorded",
        payload: {
          transactionId: deposit.transactionId,
          userId: user,
          kind: "deposit",
          btc: 1.5,
          usd: 90_000,
          at: "2025-01-02T03:04:05.000Z",
        },
      })
      const sql = yield* SqlClient.SqlClient
      const [sum] = yield* sql<{ btc: string }>`
        SELECT sum(btc_delta) AS btc FROM treasury_transactions WHERE tenant_id = ${tenant}`
      expect(Number(sum!.btc)).toBe(1.25)
    }),
  )

  effectTest("when the event cannot be written, the row is rolled back too", () =>
    Effect.gen(function* () {
      const tenant = crypto.randomUUID()
      const eventId = Bun.randomUUIDv7()
      const input = { userId: uniqueId("user"), kind: "deposit", btc: 1 } as const
      yield* recordTreasuryTransaction(tenant, input, { eventId })
      // Same event id again: the outbox insert violates its primary key after the row was inserted.
      const second = yield* Effect.exit(recordTreasuryTransaction(tenant, input, { eventId }))
      expect(Exit.isFailure(second)).toBe(true)
      expect(yield* count("treasury_transactions", tenant)).toBe(1)
      expect(yield* outboxOf(tenant)).toHaveLength(1)
    }),
  )

  effectTest("another tenant sees none of the rows", () =>
    Effect.gen(function* () {
      const tenant = crypto.randomUUID()
      yield* recordTreasuryTransaction(tenant, { userId: "u", kind: "deposit", btc: 2 })
      const seen = (t: string) =>
        withTenant(t)(Effect.flatMap(SqlClient.SqlClient, (sql) => sql`SELECT id FROM treasury_transactions`))
      expect(yield* seen(tenant)).toHaveLength(1)
      expect(yield* seen(crypto.randomUUID())).toHaveLength(0)
    }),
  )
})

describe("ops", () => {
  effectTest("market data: the row, its event, and the newest observation is current", () =>
    Effect.gen(function* () {
      const tenant = crypto.randomUUID()
      const base = { difficulty: 1e14, blockRewardBtc: 3.125, feesBtcPerBlock: 0.1 }
      yield* updateMarketData(tenant, { ...base, btcPriceUsd: 60_000, at: new Date("2025-01-02T00:00:00Z") })
      yield* updateMarketData(tenant, { ...base, btcPriceUsd: 50_000, at: new Date("2025-01-01T00:00:00Z") })
      const events = yield* outboxOf(tenant)
      expect(events.map((e) => [e.aggregatetype, e.type])).toEqual([
        ["ops", "MarketDataUpdated"],
        ["ops", "MarketDataUpdated"],
      ])
      const latest = yield* withTenant(tenant)(latestMarketData)
      expect(Option.getOrThrow(latest)).toEqual({
        ...base,
        btcPriceUsd: 60_000,
        at: new Date("2025-01-02T00:00:00Z"),
      })
      expect(yield* withTenant(crypto.randomUUID())(latestMarketData)).toEqual(Option.none())
    }),
  )

  effectTest("a site incident: row and event keyed by site", () =>
    Effect.gen(function* () {
      const tenant = crypto.randomUUID()
      const incident = yield* reportSiteIncident(tenant, {
        site: "texas-1",
        severity: "major",
        description: "transformer trip, 40 % of racks down",
      })
      const [event] = yield* outboxOf(tenant)
      expect(event).toMatchObject({
        id: incident.eventId,
        aggregateid: "texas-1",
        type: "SiteIncidentReported",
        payload: { incidentId: incident.incidentId, severity: "major" },
      })
      expect(yield* count("site_incidents", tenant)).toBe(1)
    }),
  )
})

describe("crm", () => {
  effectTest("upserting an account twice updates one row and appends two events", () =>
    Effect.gen(function* () {
      const tenant = crypto.randomUUID()
      const account = { accountId: "acme", userId: "u1", name: "Acme Mining", tier: "pro" } as const
      yield* upsertAccount(tenant, account)
      yield* upsertAccount(tenant, { ...account, tier: "institutional" })
      const sql = yield* SqlClient.SqlClient
      const rows = yield* sql`SELECT tier FROM crm_accounts WHERE tenant_id = ${tenant}`
      expect(rows).toEqual([{ tier: "institutional" }])
      expect((yield* outboxOf(tenant)).map((e) => e.type)).toEqual(["AccountUpserted", "AccountUpserted"])
    }),
  )

  effectTest("a contact is keyed by its account; an unknown account writes nothing", () =>
    Effect.gen(function* () {
      const tenant = crypto.randomUUID()
      const missing = yield* Effect.flip(
        upsertContact(tenant, { contactId: "c1", accountId: "nope", email: "a@b.io", name: "Ada" }),
      )
      expect(missing).toBeInstanceOf(UnknownAccount)
      expect(yield* outboxOf(tenant)).toHaveLength(0)
      yield* upsertAccount(tenant, { accountId: "acme", userId: "u1", name: "Acme", tier: "retail" })
      const contact = yield* upsertContact(tenant, {
        contactId: "c1",
        accountId: "acme",
        email: "ada@acme.io",
        name: "Ada",
      })
      const events = yield* outboxOf(tenant)
      expect(events[1]).toMatchObject({ id: contact.eventId, aggregateid: "acme", type: "ContactUpserted" })
      expect(yield* count("crm_contacts", tenant)).toBe(1)
    }),
  )

  effectTest("an account of another tenant is unknown", () =>
    Effect.gen(function* () {
      const owner = crypto.randomUUID()
      yield* upsertAccount(owner, { accountId: "shared-name", userId: "u1", name: "A", tier: "retail" })
      const error = yield* Effect.flip(
        upsertContact(crypto.randomUUID(), {
          contactId: "c1",
          accountId: "shared-name",
          email: "x@y.io",
          name: "X",
        }),
      )
      expect(error).toBeInstanceOf(UnknownAccount)
    }),
  )
})
