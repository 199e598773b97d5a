/**
 * `bun run services [--demo]` — the whole platform in one process tree: the embedded stack for unset
 * env vars, migrations, a tenant for local use, then the API, the relay and the three consumer
 * groups as supervised child processes. Ctrl-C / SIGTERM drains every child and exits 0.
 */
import { existsSync, readFileSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { Effect, Redacted, Schedule } from "effect"
import { loadDemo } from "../hashinsight/demo.ts"
import { createTenant } from "../http/tenants.ts"
import { AppConfig, describeConfig } from "../platform/config.ts"
import { Platform } from "../platform/layers.ts"
import { migrate } from "../platform/migrator.ts"
import { stackDir } from "../platform/stack/index.ts"
import { type ChildSpec, supervise } from "../platform/supervisor.ts"
import { runMain } from "./main.ts"

const usage = `usage: bun run services [--demo]

Starts the embedded stack (for unset DATABASE_URL / REDIS_URL / KAFKA_BROKERS), applies migrations,
then runs the API on PORT (default 5000), the relay (WAL mode) and one member of each consumer group;
the relay and the members serve Prometheus metrics on PORT+1 … PORT+4 (/metrics).
  --demo   load a demo tenant's users, miners, treasury and market data once the API is up`

const args = process.argv.slice(2)
const unknown = args.filter((a) => a !== "--demo")
if (args.includes("--help") || args.includes("-h")) {
  console.log(usage)
  process.exit(0)
}
if (unknown.length > 0) {
  console.error(`unknown argument: ${unknown.join(" ")}\n\n${usage}`)
  process.exit(2)
}
const demo = args.includes("--demo")

/** The children; each but the API serves its metrics on the next port after `PORT`. */
const childrenOn = (port: number): ReadonlyArray<ChildSpec> =>
  [
    { name: "api", argv: ["src/bin/api.ts"] },
    { name: "relay", argv: ["src/bin/relay.ts", "--mode", "wal"] },
    { name: "portfolio-consumer", argv: ["src/bin/consumer.ts", "portfolio"] },
    { name: "intel-consumer", argv: ["src/bin/consumer.ts", "intel"] },
    { name: "crm-sync-consumer", argv: ["src/bin/consumer.ts", "crm-sync"] },
  ].map((c, i) => (i === 0 ? c : { ...c, env: { METRICS_PORT: String(port + i) } }))

/**
 * The local tenant: created on first run; its key is kept in .stack/ (embedded state, git-ignored)
 * so later runs can print it again. Against external services nothing is stored on disk.
 */
const localTenant = Effect.gen(function* () {
  const file = join(stackDir(), "demo-tenant.json")
  if (existsSync(file)) return JSON.parse(readFileSync(file, "utf8")) as { id: string; apiKey: string }
  const name = `demo-${new Date().toISOString().slice(0, 10)}-${Math.random().toString(36).slice(2, 6)}`
  const created = yield* createTenant(name)
  const tenant = { id: created.id, apiKey: Redacted.value(created.apiKey) }
  writeFileSync(file, JSON.stringify(tenant), { mode: 0o600 })
  return tenant
})

/** The API answers once its child is listening; the demo loader and the banner wait for that. */
const waitForApi = (url: string) =>
  Effect.tryPromise(() => fetch(`${url}/openapi.json`)).pipe(
    Effect.filterOrFail((r) => r.ok),
    Effect.retry(Schedule.spaced("200 millis").pipe(Schedule.upTo("60 seconds"))),
  )

runMain(
  Effect.gen(function* () {
    const config = yield* AppConfig
    yield* Effect.logInfo(`config: ${JSON.stringify(describeConfig(config))}`)
    const migrated = yield* migrate()
    yield* Effect.logInfo(`migrations: ${migrated.applied.length} applied, ${migrated.skipped} up to date`)
    const tenant = yield* localTenant
    // Bound to every address, the API is reached on loopback.
    const url = `http://${config.host === "0.0.0.0" ? "127.0.0.1" : config.host}:${config.port}`
    const children = childrenOn(config.port)
    yield* Effect.fork(
      Effect.gen(function* () {
        yield* waitForApi(url)
        yield* Effect.logInfo(
          [
            `HashInsight is up: API ${url}  docs ${url}/docs  OpenAPI ${url}/openapi.json  health ${url}/api/health`,
            `metrics: api ${url}/metrics  ${children
              .flatMap((c) => (c.env?.METRICS_PORT ? [`${c.name} :${c.env.METRICS_PORT}/metrics`] : []))
              .join("  ")}`,
            `tenant ${tenant.id}: curl -H 'Authorization: Bearer ${tenant.apiKey}' ${url}/api/miner-models`,
          ].join("\n"),
        )
        if (demo) yield* loadDemo(url, tenant.apiKey)
      }).pipe(Effect.catchAllCause((c) => Effect.logError("demo/startup check failed", c))),
    )
    return yield* supervise(children)
  }),
  Platform.layerDb,
)
