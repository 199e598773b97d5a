import { describe, expect } from "bun:test"
import { SqlClient } from "@effect/sql"
import { Effect } from "effect"
import { loadDemo } from "../../src/hashinsight/demo.ts"
import { newTenant, outboxOf, startApi } from "../http/support.ts"
import { effectTest } from "../support/effect.ts"

const rowsOf = (tenantId: string) =>
  Effect.flatMap(
    SqlClient.SqlClient,
    (sql) => sql<Record<string, number>>`SELECT
      (SELECT count(*)::int FROM market_data WHERE tenant_id = ${tenantId}) AS market,
      (SELECT count(DISTINCT user_id)::int FROM miners WHERE tenant_id = ${tenantId}) AS users,
      (SELECT count(*)::int FROM miners WHERE tenant_id = ${tenantId}) AS miners,
      (SELECT count(*)::int FROM treasury_transactions WHERE tenant_id = ${tenantId}) AS treasury,
      (SELECT count(*)::int FROM crm_accounts WHERE tenant_id = ${tenantId}) AS accounts,
      (SELECT count(*)::int FROM crm_contacts WHERE tenant_id = ${tenantId}) AS contacts`,
  ).pipe(Effect.map((rows) => rows[0]))

describe("demo data", () => {
  effectTest(
    "loadDemo writes a realistic tenant through the HTTP API, and loading it again writes nothing",
    () =>
      Effect.gen(function* () {
        const api = yield* startApi()
        const t = yield* newTenant
        yield* loadDemo(api.base, t.key)
        const loaded = yield* rowsOf(t.id)
        expect(loaded).toEqual({ market: 1, users: 3, miners: 8, treasury: 6, accounts: 3, contacts: 3 })
        const events = yield* outboxOf(t.id)
        expect(events).toHaveLength(21)
        const latest = (yield* api.call("/api/ops/market", { key: t.key })).json as { btcPriceUsd: number }
        expect(latest.btcPriceUsd).toBe(95_000)

        yield* loadDemo(api.base, t.key)
        expect(yield* rowsOf(t.id)).toEqual(loaded)
        expect(yield* outboxOf(t.id)).toHaveLength(21)
      }),
  )

  effectTest("a demo write the API refuses fails loadDemo with the step and the status", () =>
    Effect.gen(function* () {
      const api = yield* startApi()
      const failure = yield* Effect.flip(loadDemo(api.base, "hik_not-a-key"))
      expect(failure).toMatchObject({ _tag: "DemoLoadFailed", step: "market", status: 401 })
    }),
  )
})
