/**
 * `bun run bench [name] [flags]` — runs one benchmark (`bench/<name>.ts`, which exports its `flags`
 * and `run`) or lists them; `bun run bench <name> --help` lists its flags.
 * The embedded stack is started when the env vars are unset, as for every other command. Each run
 * gets a migrated database of its own on that server (DATABASE_URL names it while the bench runs),
 * dropped when it ends.
 */
import { readdirSync } from "node:fs"
import { PgClient } from "@effect/sql-pg"
import { Effect, Redacted } from "effect"
import Pg from "pg"
import { migrate } from "../src/platform/migrator.ts"
import { ensureEnv } from "../src/platform/stack/index.ts"
import { benchFlags, type Flags, type FlagValues } from "./options.ts"

const available = readdirSync(import.meta.dir)
  .filter(
    (f) => f.endsWith(".ts") && !["run.ts", "report.ts", "options.ts"].includes(f) && !f.startsWith("_"),
  )
  .map((f) => f.slice(0, -3))
  .sort()

const name = process.argv[2]
if (!name || name === "--help" || name === "-h" || !available.includes(name)) {
  const usage = `usage: bun run bench <${available.join("|") || "name"}> [options]\n\nEach writes bench/results/<name>.json and prints a table.`
  if (name && name !== "--help" && name !== "-h") {
    console.error(`unknown benchmark: ${name}\n\n${usage}`)
    process.exit(2)
  }
  console.log(usage)
  process.exit(name ? 0 : 2)
}

process.env.NODE_NO_WARNINGS = "1"
const mod = (await import(`./${name}.ts`)) as {
  flags: Flags
  run: (flags: FlagValues<Flags>) => Promise<void>
}
// Flags first: a bad one is a usage message, with nothing started.
const flags = benchFlags(name, process.argv.slice(3), mod.flags)
await ensureEnv()

// A migrated database of the run's own on the same server, dropped after: what a bench writes
// (tenants, holdings, thousands of outbox events) never lands in the database `bun run services`
// uses, whose relay would publish it all.
const server = process.env.DATABASE_URL!
const database = `bench_${name.replaceAll("-", "_")}_${Date.now().toString(36)}`
const admin = new Pg.Client({ connectionString: server })
await admin.connect()
await admin.query(`CREATE DATABASE ${database}`)
const scratch = new URL(server)
scratch.pathname = `/${database}`
process.env.DATABASE_URL = scratch.toString()
try {
  await Effect.runPromise(
    migrate().pipe(
      Effect.provide(PgClient.layer({ url: Redacted.make(scratch.toString()), maxConnections: 2 })),
      Effect.scoped,
    ),
  )
  await mod.run(flags)
} finally {
  // A relay's slot outlives its walsender for a moment and blocks the drop: dropped once inactive.
  for (let i = 0; i < 30; i++) {
    await admin.query(
      "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = $1 AND NOT active",
      [database],
    )
    const left = await admin.query("SELECT 1 FROM pg_replication_slots WHERE database = $1", [database])
    if (left.rowCount === 0) break
    await Bun.sleep(200)
  }
  await admin.query(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`).catch(() => undefined)
  await admin.end()
}
process.exit(0)
