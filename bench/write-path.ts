/**
 * `bun run bench write-path [--ops N]` — what one write costs in CPU, piece by piece, through our
 * layers (Effect, `@effect/sql-pg`, `withTenant`, `Outbox.append`, `Miners.add`), one operation at a
 * time after a warm-up pass over all of them; beside it, bare node-postgres running the statements of a keyed
 * `POST /api/miners` (BEGIN + tenant, claim, SAVEPOINT, row, outbox row, complete, COMMIT) on scratch
 * tables. CPU is this process's (user + system) per operation: the client side of each round trip,
 * not PostgreSQL's. Tells where the API's CPU per request goes before anyone cuts round trips.
 */
import { SqlClient } from "@effect/sql"
import { Effect, Layer, Redacted } from "effect"
import pg from "pg"
import { Outbox } from "../src/engine/outbox.ts"
import { Miners } from "../src/hashinsight/miners/miners.ts"
import { minerTopic } from "../src/hashinsight/topics.ts"
import { createTenant } from "../src/http/tenants.ts"
import { AppConfig } from "../src/platform/config.ts"
import { withTenant } from "../src/platform/db.ts"
import { Platform } from "../src/platform/layers.ts"
import { type FlagValues, number } from "./options.ts"
import { type BenchRow, report } from "./report.ts"

interface Measured {
  readonly cpuMs: number
  readonly wallMs: number
}

const warmUp = async (ops: number, once: () => Promise<unknown>) => {
  for (let i = 0; i < ops; i++) await once()
}

const measureAsync = async (ops: number, once: () => Promise<unknown>): Promise<Measured> => {
  const cpu0 = process.cpuUsage()
  const wall0 = performance.now()
  for (let i = 0; i < ops; i++) await once()
  const cpu = process.cpuUsage(cpu0)
  return { cpuMs: (cpu.user + cpu.system) / 1000 / ops, wallMs: (performance.now() - wall0) / ops }
}

/** The statements of a keyed POST /api/miners, on scratch tables, with nothing between them. */
const bareKeyedWrite = async (pool: pg.Pool) => {
  const c = await pool.connect()
  try {
    const key = crypto.randomUUID()
    const id = crypto.randomUUID()
    await c.query("BEGIN; SELECT set_config('app.bench', 'x', true)")
    await c.query("INSERT INTO bench_wp_records (k, state) VALUES ($1, 'in_flight') ON CONFLICT DO NOTHING", [
      key,
    ])
    await c.query("SAVEPOINT w")
    const row = await c.query("INSERT INTO bench_wp_rows VALUES ($1, $2, $3, $4) RETURNING *", [
      id,
      "u",
      "m",
      2,
    ])
    await c.query("INSERT INTO bench_wp_outbox VALUES ($1, $2, $3)", [
      crypto.randomUUID(),
      id,
      JSON.stringify(row.rows[0]),
    ])
    await c.query("UPDATE bench_wp_records SET state = 'completed', body = $2 WHERE k = $1", [
      key,
      JSON.stringify(row.rows[0]),
    ])
    await c.query("COMMIT")
  } finally {
    c.release()
  }
}

export const flags = { ops: number(1000, "operations measured per row") }

export const run = async ({ ops }: FlagValues<typeof flags>) => {
  const rows: Array<BenchRow> = []
  const add = (system: string, scenario: string, m: Measured) => {
    rows.push({ system, scenario, metric: "cpu_per_op", value: m.cpuMs, unit: "ms" })
    rows.push({ system, scenario, metric: "wall_per_op", value: m.wallMs, unit: "ms" })
  }

  const program = Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const miners = yield* Miners
    const outbox = yield* Outbox
    const tenant = (yield* createTenant(`bench-write-path-${Date.now()}`)).id
    const input = { userId: "bench", modelId: "antminer-s21", count: 2, site: "s", powerPriceUsdPerKwh: 0.05 }
    const event = () => ({
      type: "MinerAdded" as const,
      aggregateId: crypto.randomUUID(),
      tenantId: tenant,
      payload: {
        minerId: crypto.randomUUID(),
        userId: "bench",
        modelId: "antminer-s21",
        count: 2,
        site: "s",
        powerPriceUsdPerKwh: 0.05,
        firmware: null,
      },
    })
    const scenarios: ReadonlyArray<readonly [string, Effect.Effect<unknown, unknown, SqlClient.SqlClient>]> =
      [
        ["sql`SELECT 1` outside a transaction", sql`SELECT 1`],
        ["withTenant(nothing): reserve, BEGIN + tenant, COMMIT", withTenant(tenant)(Effect.void)],
        ["withTenant(5 × SELECT 1)", withTenant(tenant)(Effect.repeatN(sql`SELECT 1`, 4))],
        [
          "withTenant(INSERT miners)",
          Effect.suspend(() =>
            withTenant(tenant)(
              sql`INSERT INTO miners (id, tenant_id, user_id, model_id, count, site, power_price_usd_per_kwh)
                VALUES (${Bun.randomUUIDv7()}, ${tenant}, 'bench', 'antminer-s21', 2, 's', 0.05)`,
            ),
          ),
        ],
        [
          "withTenant(Outbox.append one event)",
          Effect.suspend(() => withTenant(tenant)(outbox.append(minerTopic, [event()]))),
        ],
        [
          "withTenant(Miners.add): row + event",
          withTenant(tenant)(Effect.suspend(() => miners.add(tenant, input))),
        ],
      ]
    const once = (effect: Effect.Effect<unknown, unknown, SqlClient.SqlClient>) => () =>
      Effect.runPromise(Effect.provideService(effect, SqlClient.SqlClient, sql))
    // A whole pass first: the JIT warms up on all of them before any is measured.
    for (const [, effect] of scenarios) yield* Effect.promise(() => warmUp(ops, once(effect)))
    for (const [name, effect] of scenarios)
      add("hashinsight", name, yield* Effect.promise(() => measureAsync(ops, once(effect))))
  })
  await Effect.runPromise(
    program.pipe(
      Effect.provide(Miners.layer),
      Effect.provide(Layer.mergeAll(Platform.layerDb, Outbox.layer)),
    ) as Effect.Effect<void>,
  )

  const config = await Effect.runPromise(Effect.provide(AppConfig, AppConfig.layer))
  const pool = new pg.Pool({ connectionString: Redacted.value(config.databaseUrl), max: 2 })
  try {
    await pool.query(`CREATE UNLOGGED TABLE IF NOT EXISTS bench_wp_records (k text PRIMARY KEY, state text, body text);
      CREATE UNLOGGED TABLE IF NOT EXISTS bench_wp_rows (id uuid PRIMARY KEY, user_id text, model text, count int);
      CREATE UNLOGGED TABLE IF NOT EXISTS bench_wp_outbox (id uuid PRIMARY KEY, aggregateid uuid, payload jsonb)`)
    add(
      "node-postgres (bare)",
      "SELECT 1 outside a transaction",
      await measureAsync(ops, () => pool.query("SELECT 1")),
    )
    add(
      "node-postgres (bare)",
      "the 7 round trips of a keyed POST /api/miners",
      await measureAsync(ops, () => bareKeyedWrite(pool)),
    )
  } finally {
    await pool
      .query("DROP TABLE IF EXISTS bench_wp_records, bench_wp_rows, bench_wp_outbox")
      .catch(() => undefined)
    await pool.end()
  }

  report("write-path", rows, [
    `${ops} operations each, one at a time, after a warm-up pass of as many over every scenario; CPU = this process's user + system time per operation (the client side; PostgreSQL's own CPU is not counted)`,
    "hashinsight rows run through the API's layers (Effect, @effect/sql-pg with the coalescing socket, withTenant, Outbox, Miners); node-postgres rows use a plain pg.Pool on unlogged scratch tables",
  ])
}
