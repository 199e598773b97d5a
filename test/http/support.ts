/**
 * Starts the real API (Bun server, real PostgreSQL) on a free port for the test's scope, and a
 * small fetch client for it.
 */
import { SqlClient } from "@effect/sql"
import { type Duration, Effect, Layer, Redacted } from "effect"
import { Outbox } from "../../src/engine/outbox.ts"
import { HashInsightApi } from "../../src/hashinsight/api.ts"
import { HashInsightRoutes } from "../../src/hashinsight/routes.ts"
import { ApiServer } from "../../src/http/server.ts"
import { createTenant } from "../../src/http/tenants.ts"
import { AppConfig, type AppConfigShape } from "../../src/platform/config.ts"
import { Db } from "../../src/platform/db.ts"
import { migrate } from "../../src/platform/migrator.ts"
import { freePort } from "../../src/platform/stack/index.ts"
import { clientFor, scratchDatabase, withClient } from "../support/database.ts"
import { uniqueId } from "../support/ids.ts"

export interface Api {
  readonly base: string
  readonly call: (path: string, init?: RequestInit & { key?: string }) => Effect.Effect<Reply>
}

export interface Reply {
  readonly status: number
  readonly headers: Headers
  readonly text: string
  readonly json: unknown
}

const call =
  (base: string) =>
  (path: string, init: RequestInit & { key?: string } = {}): Effect.Effect<Reply> =>
    Effect.promise(async () => {
      const headers = new Headers(init.headers)
      if (init.key !== undefined) headers.set("authorization", `Bearer ${init.key}`)
      if (init.body !== undefined && !headers.has("content-type"))
        headers.set("content-type", "application/json")
      const res = await fetch(`${base}${path}`, { ...init, headers })
      const text = await res.text()
      let json: unknown
      try {
        json = JSON.parse(text)
      } catch {
        json = undefined
      }
      return { status: res.status, headers: res.headers, text, json }
    })

/**
 * The API on the test's own SqlClient (or on `databaseUrl`, or on a client layer of the test's
 * making), up until the test's scope closes.
 */
export const startApi = (
  database?: string | Layer.Layer<SqlClient.SqlClient, unknown>,
  options: { readonly keyTtl?: Duration.DurationInput } = {},
) =>
  Effect.gen(function* () {
    const port = yield* Effect.promise(() => freePort())
    const server = ApiServer.layer({ api: HashInsightApi, routes: HashInsightRoutes, port, ...options }).pipe(
      Layer.provide(Outbox.layer),
    )
    if (database === undefined) yield* Layer.build(server)
    else
      yield* Layer.build(
        server.pipe(Layer.provide(typeof database === "string" ? clientFor(database) : database)),
      ).pipe(Effect.orDie)
    const base = `http://127.0.0.1:${port}`
    return { base, call: call(base) } satisfies Api
  })

/**
 * The production database layer (`Db.layerConfig`: our pool, its socket and statement cache) on `url`, for
 * tests of what the pool does when connections break; `config` overrides the rest (`dbPoolMax`).
 */
export const poolOn = (url: string, config: Partial<Omit<AppConfigShape, "databaseUrl">> = {}) =>
  Layer.unwrapEffect(
    Effect.map(AppConfig, (base) =>
      Db.layerConfig.pipe(
        Layer.provide(Layer.succeed(AppConfig, { ...base, ...config, databaseUrl: Redacted.make(url) })),
      ),
    ),
  ).pipe(Layer.provide(AppConfig.layer))

/**
 * A migrated database of the test's own with a tenant in it: for tests that break the database
 * (revoke grants, hold locks) without touching anyone else's.
 */
export const scratchTenant = Effect.gen(function* () {
  const db = yield* scratchDatabase
  const inScratch = withClient(db.url)
  yield* inScratch(migrate())
  const tenant = yield* inScratch(createTenant(uniqueId("scratch-tenant")))
  return { db, inScratch, tenant, key: Redacted.value(tenant.apiKey) }
})

export const newTenant = Effect.suspend(() =>
  Effect.map(createTenant(uniqueId("tenant")), (t) => ({ id: t.id, key: Redacted.value(t.apiKey) })),
)

export const addMinerBody = (overrides: Record<string, unknown> = {}) =>
  JSON.stringify({
    userId: "user-1",
    modelId: "antminer-s21",
    count: 3,
    site: "texas-1",
    powerPriceUsdPerKwh: 0.045,
    ...overrides,
  })

/** Outbox events for one miner (read as the connecting role, across tenants). */
export const minerAddedEvents = (minerId: string) =>
  Effect.flatMap(
    SqlClient.SqlClient,
    (sql) =>
      sql<{ tenantId: string; payload: unknown; eventVersion: number }>`
        SELECT tenant_id AS "tenantId", payload, event_version AS "eventVersion" FROM event_outbox
        WHERE aggregatetype = 'miner' AND type = 'MinerAdded' AND aggregateid = ${minerId}`,
  )

export interface OutboxEvent {
  readonly id: string
  readonly aggregatetype: string
  readonly aggregateid: string
  readonly type: string
  readonly payload: Record<string, unknown>
}

/** A tenant's outbox events in append order (read as the connecting role). */
export const outboxOf = (tenantId: string) =>
  Effect.flatMap(
    SqlClient.SqlClient,
    (sql) => sql<OutboxEvent>`SELECT id, aggregatetype, aggregateid, type, payload FROM event_outbox
      WHERE tenant_id = ${tenantId} ORDER BY seq`,
  )
