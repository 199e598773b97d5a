/**
 * The bare reference `bench api` compares us with is a fair one: it keeps our guarantees (tenant
 * authentication, RLS, idempotent replay / 409 / 422, the miner and its outbox event in one
 * transaction), so its lower cost is not bought by doing less.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test"
import { randomBytes } from "node:crypto"
import Pg from "pg"
import { serve } from "../../bench/reference/api.ts"
import { hashApiKey } from "../../src/http/tenants.ts"
import { freePort } from "../../src/platform/stack/index.ts"

const admin = new Pg.Pool({ connectionString: process.env.DATABASE_URL, max: 2 })
let server: { readonly port: number; readonly stop: () => Promise<void> }

const newTenant = async () => {
  const id = Bun.randomUUIDv7()
  const key = `hik_${randomBytes(16).toString("hex")}`
  await admin.query("INSERT INTO tenants (id, name, api_key_hash) VALUES ($1, $2, $3)", [
    id,
    `reference-${id}`,
    hashApiKey(key),
  ])
  return { id, key }
}

const call = async (path: string, key: string, init: { body?: unknown; idempotencyKey?: string } = {}) => {
  const headers: Record<string, string> = { authorization: `Bearer ${key}` }
  if (init.idempotencyKey) headers["idempotency-key"] = init.idempotencyKey
  const res = await fetch(`http://127.0.0.1:${server.port}${path}`, {
    method: init.body === undefined ? "GET" : "POST",
    headers: { ...headers, "content-type": "application/json" },
    body: init.body === undefined ? undefined : JSON.stringify(init.body),
  })
  return { status: res.status, headers: res.headers, text: await res.text() }
}

const holding = (userId: string) => ({
  userId,
  modelId: "antminer-s21",
  count: 2,
  site: "ref-site",
  powerPriceUsdPerKwh: 0.05,
})

beforeAll(async () => {
  server = serve({ databaseUrl: process.env.DATABASE_URL!, port: await freePort() })
})
afterAll(async () => {
  await server.stop()
  await admin.end()
})

describe("bench/reference/api.ts keeps our guarantees", () => {
  test("a keyed write commits the miner and one outbox event together; the key replays it, another body is 422", async () => {
    const tenant = await newTenant()
    const key = `ref-${Bun.randomUUIDv7()}`
    const first = await call("/api/miners", tenant.key, { body: holding("u1"), idempotencyKey: key })
    expect(first.status).toBe(201)
    const miner = JSON.parse(first.text) as { id: string }
    const { rows } = await admin.query(
      `SELECT o.id::text, o.type, o.event_version, o.tenant_id::text, m.xmin::text = o.xmin::text AS same_tx
       FROM miners m JOIN event_outbox o ON o.aggregateid = m.id::text WHERE m.id = $1`,
      [miner.id],
    )
    expect(rows).toHaveLength(1)
    expect(rows[0]).toMatchObject({
      type: "MinerAdded",
      event_version: 2,
      tenant_id: tenant.id,
      same_tx: true,
    })
    expect(rows[0].id[14]).toBe("7")

    const again = await call("/api/miners", tenant.key, { body: holding("u1"), idempotencyKey: key })
    expect(again.status).toBe(201)
    expect(again.text).toBe(first.text)
    expect(again.headers.get("idempotent-replayed")).toBe("true")
    const reused = await call("/api/miners", tenant.key, { body: holding("u2"), idempotencyKey: key })
    expect(reused.status).toBe(422)
    const count = await admin.query("SELECT count(*)::int AS n FROM miners WHERE tenant_id = $1", [tenant.id])
    expect(count.rows[0].n).toBe(1)
  })

  test("a key whose claim another transaction holds is 409, nothing executed", async () => {
    const tenant = await newTenant()
    const key = `ref-${Bun.randomUUIDv7()}`
    const holder = await admin.connect()
    try {
      await holder.query("BEGIN")
      await holder.query("SELECT pg_advisory_xact_lock(hashtextextended($1::text || ':' || $2::text, 0))", [
        tenant.id,
        key,
      ])
      const reply = await call("/api/miners", tenant.key, { body: holding("u1"), idempotencyKey: key })
      expect(reply.status).toBe(409)
    } finally {
      await holder.query("ROLLBACK")
      holder.release()
    }
    const count = await admin.query("SELECT count(*)::int AS n FROM miners WHERE tenant_id = $1", [tenant.id])
    expect(count.rows[0].n).toBe(0)
  })

  test("an unknown key is 401; a tenant reads its own holdings only (RLS)", async () => {
    expect((await call("/api/miners", "hik_nobody", { body: holding("u1") })).status).toBe(401)
    const a = await newTenant()
    const b = await newTenant()
    const user = `shared-${Bun.randomUUIDv7()}`
    expect((await call("/api/miners", a.key, { body: holding(user), idempotencyKey: "k" })).status).toBe(201)
    const own = await call(`/api/miners?userId=${user}`, a.key)
    expect(JSON.parse(own.text)).toHaveLength(1)
    const other = await call(`/api/miners?userId=${user}`, b.key)
    expect(other.status).toBe(200)
    expect(JSON.parse(other.text)).toEqual([])
  })
})
