/**
 * The bare reference `bench api` measures us against: `POST /api/miners` with `Idempotency-Key`,
 * and `GET /api/miners`, written directly on `Bun.serve` + node-postgres — no Effect, no HttpApi.
 * It keeps every guarantee of ours and sends the same statements (texts taken from ours with
 * `log_statement=all`), so the ratio of the two is the cost of our layers, not of the SQL:
 * - a Bearer key resolved to its tenant by its SHA-256 (`tenants`), known keys remembered 30 s;
 * - the work in one transaction as `hashinsight_app` with `app.tenant_id` set (RLS), opened by the
 *   same one-round-trip `BEGIN; SELECT set_config(…)` as `withTenant`;
 * - the key's claim (the same statement: advisory lock + in-flight insert), the write under a
 *   savepoint, the record completed in the same transaction; replay with `Idempotent-Replayed`,
 *   409 in flight, 422 on a different fingerprint (method, path with query, body bytes);
 * - the miner row and its `MinerAdded` outbox event (UUIDv7 id, `event_version`) committed together.
 * The driver is set up as ours is: named prepared statements (node-postgres's `name`) and the
 * socket that gathers a query's writes (src/platform/pg-socket.ts, plain node), so neither side
 * pays for what the other's driver settings avoid.
 *
 * `bun bench/reference/api.ts` serves on `PORT` against `DATABASE_URL` until SIGTERM.
 */
import { createHash } from "node:crypto"
import Pg from "pg"
import { coalescingSocket } from "../../src/platform/pg-socket.ts"

const problemBase = "https://hashinsight.dev/problems"
const keyTtlMs = 30_000
const minerEventVersion = 2

const statements = {
  tenant: "SELECT id, name FROM tenants WHERE api_key_hash = $1",
  claim: `
          WITH existing AS (
            SELECT fingerprint, state, response_status AS status,
    response_headers->>'content-type' AS "contentType", response_body AS body,
    expires_at <= now() AS expired,
    created_at < now() - make_interval(secs => 60) AS stale FROM idempotency_records
            WHERE tenant_id = $1 AND idempotency_key = $2
          ), lock AS (
            SELECT CASE WHEN NOT EXISTS (SELECT 1 FROM existing WHERE state = 'completed' AND NOT expired)
              THEN pg_try_advisory_xact_lock(hashtextextended($3::text || ':' || $4::text, 0))
            END AS locked
          ), claim AS (
            INSERT INTO idempotency_records (tenant_id, idempotency_key, fingerprint, state)
            SELECT $5::uuid, $6::text, $7::text, 'in_flight' FROM lock WHERE locked
            ON CONFLICT DO NOTHING
            RETURNING 1
          )
          SELECT existing.*, lock.locked, EXISTS (SELECT 1 FROM claim) AS inserted
          FROM lock LEFT JOIN existing ON true`,
  recheck: `SELECT fingerprint, state, response_status AS status,
    response_headers->>'content-type' AS "contentType", response_body AS body,
    expires_at <= now() AS expired,
    created_at < now() - make_interval(secs => 60) AS stale FROM idempotency_records
          WHERE tenant_id = $1 AND idempotency_key = $2
          FOR UPDATE`,
  deleteExpired: "DELETE FROM idempotency_records WHERE tenant_id = $1 AND idempotency_key = $2",
  insertClaim: `INSERT INTO idempotency_records (tenant_id, idempotency_key, fingerprint, state)
            VALUES ($1, $2, $3, 'in_flight')`,
  takeOver: `UPDATE idempotency_records SET created_at = clock_timestamp()
          WHERE tenant_id = $1 AND idempotency_key = $2`,
  insertMiner: `
          INSERT INTO miners (id, tenant_id, user_id, model_id, count, site, power_price_usd_per_kwh, firmware)
          VALUES ($1, $2, $3, $4, $5, $6,
                  $7, $8)
          RETURNING id, user_id AS "userId", model_id AS "modelId", count, site,
    power_price_usd_per_kwh::float8 AS "powerPriceUsdPerKwh", firmware, status, created_at AS "createdAt"`,
  insertEvent:
    'INSERT INTO event_outbox ("id","aggregatetype","aggregateid","type","payload","tenant_id","traceparent","event_version") VALUES ($1,$2,$3,$4,$5,$6,$7,$8)',
  complete: `
          UPDATE idempotency_records
          SET state = 'completed', response_status = $1,
              response_headers = $2::jsonb,
              response_body = $3, completed_at = now()
          WHERE tenant_id = $4 AND idempotency_key = $5 AND state = 'in_flight'
          RETURNING 1`,
  listMiners: `SELECT id, user_id AS "userId", model_id AS "modelId", count, site,
    power_price_usd_per_kwh::float8 AS "powerPriceUsdPerKwh", firmware, status, created_at AS "createdAt" FROM miners WHERE user_id = $1
          ORDER BY created_at, id LIMIT $2`,
} as const

type Statement = keyof typeof statements

interface Stored {
  readonly status: number
  readonly contentType: string
  readonly body: string
}

interface RecordRow {
  readonly fingerprint: string
  readonly state: string
  readonly status: number | null
  readonly contentType: string | null
  readonly body: string | null
  readonly expired: boolean
  readonly stale: boolean
}

type Claim = "claimed" | "inFlight" | "mismatch" | Stored

const uuidShape = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

const json = (status: number, body: unknown): Stored => ({
  status,
  contentType: "application/json",
  body: JSON.stringify(body),
})

const problem = (status: number, slug: string, title: string, detail: string, tag: string): Stored => ({
  status,
  contentType: "application/problem+json",
  body: JSON.stringify({ type: `${problemBase}/${slug}`, title, status, detail, _tag: tag }),
})

const send = (r: Stored, replayed = false) =>
  new Response(r.body, {
    status: r.status,
    headers: replayed
      ? { "content-type": r.contentType, "idempotent-replayed": "true" }
      : { "content-type": r.contentType },
  })

const unauthorized = (detail: string) =>
  send(problem(401, "unauthorized", "Missing or invalid API key", detail, "Unauthorized"))
const unavailable = send(
  problem(503, "service-unavailable", "Service unavailable", "database unavailable", "ServiceUnavailable"),
)
const inFlight = (detail: string) =>
  send(
    problem(409, "idempotency-in-flight", "Request with this key in flight", detail, "IdempotencyInFlight"),
  )
const keyReused = send(
  problem(
    422,
    "idempotency-key-reused",
    "Idempotency-Key reused with a different request",
    "this Idempotency-Key was already used with a different method, path or body",
    "IdempotencyKeyReused",
  ),
)
const invalid = (detail: string) =>
  send({
    status: 400,
    contentType: "application/problem+json",
    body: JSON.stringify({
      type: `${problemBase}/validation`,
      title: "Request validation failed",
      status: 400,
      detail,
      errors: [{ path: "", message: detail }],
      _tag: "ValidationProblem",
    }),
  })

interface AddMiner {
  readonly userId: string
  readonly modelId: string
  readonly count: number
  readonly site: string
  readonly powerPriceUsdPerKwh: number
  readonly firmware?: string
}

const text = (v: unknown, max: number) =>
  typeof v === "string" && v.length >= 1 && v.length <= max && !v.includes("\u0000")

/** The same bounds as `AddMiner` (src/hashinsight/miners/schema.ts). */
const addMiner = (u: unknown): AddMiner | undefined => {
  if (typeof u !== "object" || u === null) return undefined
  const o = u as Record<string, unknown>
  const ok =
    text(o.userId, 128) &&
    text(o.modelId, 64) &&
    Number.isInteger(o.count) &&
    (o.count as number) >= 1 &&
    (o.count as number) <= 1_000_000 &&
    text(o.site, 128) &&
    typeof o.powerPriceUsdPerKwh === "number" &&
    Number.isFinite(o.powerPriceUsdPerKwh) &&
    o.powerPriceUsdPerKwh >= 0 &&
    o.powerPriceUsdPerKwh <= 100 &&
    (o.firmware === undefined || text(o.firmware, 64))
  return ok ? (o as unknown as AddMiner) : undefined
}

const validKey = (key: string) => key.length > 0 && key.length <= 255 && /^[\x21-\x7e]+$/.test(key)

export const serve = (options: { readonly databaseUrl: string; readonly port: number }) => {
  const pool = new Pg.Pool({
    connectionString: options.databaseUrl,
    max: 10,
    idleTimeoutMillis: 30_000,
    application_name: "reference",
    stream: coalescingSocket,
  })
  pool.on("error", () => {})

  const run = <R extends object>(client: Pg.PoolClient, name: Statement, values: ReadonlyArray<unknown>) =>
    client.query<R>({ name: `reference_${name}`, text: statements[name], values: [...values] })

  const tenants = new Map<string, { readonly id: string; readonly until: number }>()
  const tenantOf = async (request: Request): Promise<string | Response> => {
    const header = request.headers.get("authorization") ?? ""
    const key = header.startsWith("Bearer ") ? header.slice(7).trim() : ""
    if (key === "") return unauthorized("send Authorization: Bearer <api key>")
    const hash = createHash("sha256").update(key).digest("hex")
    const known = tenants.get(hash)
    if (known !== undefined && known.until > Date.now()) return known.id
    const rows = await pool.query<{ id: string }>({
      name: "reference_tenant",
      text: statements.tenant,
      values: [hash],
    })
    const id = rows.rows[0]?.id
    if (id === undefined) return unauthorized("unknown API key")
    tenants.set(hash, { id, until: Date.now() + keyTtlMs })
    return id
  }

  /** `work` in a transaction as the RLS role with the tenant set; committed when it returns. */
  const withTenant = async <A>(tenantId: string, work: (c: Pg.PoolClient) => Promise<A>): Promise<A> => {
    if (!uuidShape.test(tenantId)) throw new Error("tenant id is not a UUID")
    const client = await pool.connect()
    try {
      await client.query(
        `BEGIN; SELECT set_config('role', 'hashinsight_app', true), set_config('app.tenant_id', '${tenantId}', true)`,
      )
      const result = await work(client)
      await client.query("COMMIT")
      client.release()
      return result
    } catch (e) {
      await client.query("ROLLBACK").catch(() => undefined)
      client.release(e instanceof Error ? e : true)
      throw e
    }
  }

  const answer = (record: RecordRow, fingerprint: string): Claim => {
    if (record.fingerprint !== fingerprint) return "mismatch"
    if (record.state !== "completed") return "inFlight"
    return {
      status: record.status ?? 500,
      contentType: record.contentType ?? "application/json",
      body: record.body ?? "",
    }
  }

  const claim = async (c: Pg.PoolClient, tenantId: string, key: string, fingerprint: string) => {
    const { rows } = await run<RecordRow & { locked: boolean | null; inserted: boolean }>(c, "claim", [
      tenantId,
      key,
      tenantId,
      key,
      tenantId,
      key,
      fingerprint,
    ])
    const first = rows[0]
    if (!first) return "inFlight"
    if (first.locked === null) return answer(first, fingerprint)
    if (!first.locked) return "inFlight"
    if (first.inserted) return "claimed"
    const existing = (await run<RecordRow>(c, "recheck", [tenantId, key])).rows[0]
    if (!existing) return "inFlight"
    if (existing.expired) {
      await run(c, "deleteExpired", [tenantId, key])
      await run(c, "insertClaim", [tenantId, key, fingerprint])
      return "claimed"
    }
    if (existing.state === "completed" || existing.fingerprint !== fingerprint)
      return answer(existing, fingerprint)
    if (!existing.stale) return "inFlight"
    await run(c, "takeOver", [tenantId, key])
    return "claimed"
  }

  /** The miner row and its outbox event; a model the catalogue lacks is the declared 422. */
  const add = async (c: Pg.PoolClient, tenantId: string, input: AddMiner): Promise<Stored> => {
    const id = Bun.randomUUIDv7()
    let row: Record<string, unknown>
    try {
      ;[row] = (
        await run<Record<string, unknown>>(c, "insertMiner", [
          id,
          tenantId,
          input.userId,
          input.modelId,
          input.count,
          input.site,
          input.powerPriceUsdPerKwh,
          input.firmware ?? null,
        ])
      ).rows as [Record<string, unknown>]
    } catch (e) {
      if ((e as { code?: string }).code !== "23503") throw e
      return problem(
        422,
        "unknown-model",
        "Unknown miner model",
        `no miner model '${input.modelId}' in the catalogue`,
        "UnknownModel",
      )
    }
    const payload = {
      minerId: id,
      userId: row.userId,
      modelId: row.modelId,
      count: row.count,
      site: row.site,
      powerPriceUsdPerKwh: row.powerPriceUsdPerKwh,
      firmware: row.firmware,
    }
    await run(c, "insertEvent", [
      Bun.randomUUIDv7(),
      "miner",
      id,
      "MinerAdded",
      JSON.stringify(payload),
      tenantId,
      null,
      minerEventVersion,
    ])
    return json(201, { ...row, createdAt: (row.createdAt as Date).toISOString() })
  }

  const addMinerRoute = async (request: Request, url: URL) => {
    const tenantId = await tenantOf(request)
    if (tenantId instanceof Response) return tenantId
    const body = await request.text()
    let input: AddMiner | undefined
    try {
      input = addMiner(JSON.parse(body))
    } catch {
      input = undefined
    }
    if (input === undefined) return invalid("AddMiner: invalid payload")
    const key = request.headers.get("idempotency-key")
    if (key === null) return send(await withTenant(tenantId, (c) => add(c, tenantId, input)))
    if (!validKey(key)) return invalid("Idempotency-Key must be 1-255 visible ASCII characters")
    const fingerprint = createHash("sha256")
      .update(`${request.method}\n${url.pathname}${url.search}\n`)
      .update(body)
      .digest("hex")
    const outcome = await withTenant(tenantId, async (c) => {
      const claimed = await claim(c, tenantId, key, fingerprint)
      if (claimed !== "claimed") return claimed
      await c.query("SAVEPOINT idempotent_write")
      const response = await add(c, tenantId, input)
      if (response.status >= 400) await c.query("ROLLBACK TO SAVEPOINT idempotent_write")
      const done = await run(c, "complete", [
        response.status,
        JSON.stringify({ "content-type": response.contentType }),
        response.body,
        tenantId,
        key,
      ])
      if (done.rowCount !== 1) throw new ClaimLost()
      return { executed: response }
    })
    if (outcome === "inFlight") return inFlight("the first request with this key has not finished")
    if (outcome === "mismatch") return keyReused
    if ("executed" in outcome) return send(outcome.executed)
    return send(outcome, true)
  }

  const listMinersRoute = async (request: Request, url: URL) => {
    const tenantId = await tenantOf(request)
    if (tenantId instanceof Response) return tenantId
    const userId = url.searchParams.get("userId")
    if (userId === null || !text(userId, 128)) return invalid("userId: expected 1-128 characters")
    const rows = await withTenant(
      tenantId,
      async (c) => (await run<Record<string, unknown>>(c, "listMiners", [userId, 500])).rows,
    )
    return send(
      json(
        200,
        rows.map((r) => ({ ...r, createdAt: (r.createdAt as Date).toISOString() })),
      ),
    )
  }

  const server = Bun.serve({
    port: options.port,
    hostname: "127.0.0.1",
    fetch: async (request) => {
      const url = new URL(request.url)
      try {
        if (url.pathname === "/api/miners" && request.method === "POST")
          return await addMinerRoute(request, url)
        if (url.pathname === "/api/miners" && request.method === "GET")
          return await listMinersRoute(request, url)
        return new Response("not found", { status: 404 })
      } catch (e) {
        if (e instanceof ClaimLost) return inFlight("this request's claim on its key was taken over")
        return unavailable
      }
    },
  })
  return {
    port: server.port ?? options.port,
    stop: async () => {
      await server.stop(true)
      await pool.end()
    },
  }
}

class ClaimLost extends Error {}

if (import.meta.main) {
  const server = serve({
    databaseUrl: process.env.DATABASE_URL ?? "",
    port: Number(process.env.PORT ?? 5001),
  })
  console.log(`reference listening on ${server.port}`)
  process.on("SIGTERM", () => void server.stop().then(() => process.exit(0)))
}
