/**
 * `bun run bench api [--duration S] [--connections N]` — the HTTP write path with idempotency on:
 * `wrk` (a separate process, Debian package `wrk`) drives POST /api/miners with a unique
 * Idempotency-Key per request against the real API, PostgreSQL and outbox; then the replay path
 * (one key, every request a stored-response replay) and a tenant read for comparison. Besides
 * wrk's figures it reports the API process's CPU time per answered request and the load average,
 * since throughput on a shared 2-core machine mostly measures the neighbours.
 */
import { spawnSync } from "node:child_process"
import { mkdtempSync, writeFileSync } from "node:fs"
import { loadavg, tmpdir } from "node:os"
import { join } from "node:path"
import { SqlClient } from "@effect/sql"
import { Effect, Layer, Redacted } from "effect"
import { Outbox } from "../src/engine/outbox.ts"
import { HashInsightApi } from "../src/hashinsight/api.ts"
import { HashInsightRoutes } from "../src/hashinsight/routes.ts"
import { ApiServer } from "../src/http/server.ts"
import { createTenant } from "../src/http/tenants.ts"
import { Platform } from "../src/platform/layers.ts"
import { freePort, installOsPackages } from "../src/platform/stack/index.ts"
import { type FlagValues, number } from "./options.ts"
import { type BenchRow, report } from "./report.ts"

/** Unmeasured keyed writes before the scenarios. */
const warmUpSeconds = 5

const body = JSON.stringify({
  userId: "bench-user",
  modelId: "antminer-s21",
  count: 2,
  site: "bench-site",
  powerPriceUsdPerKwh: 0.05,
})

/** Each wrk thread numbers its requests; thread id + counter + a per-run nonce make keys unique. */
const luaScript = (apiKey: string, mode: "unique" | "replay" | "read") => `
local counter = 0
local threads = {}
local nonce = "${Date.now().toString(36)}"
function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end
function init(args)
  wrk.headers["Authorization"] = "Bearer ${apiKey}"
  wrk.headers["Content-Type"] = "application/json"
end
request = function()
  counter = counter + 1
  if "${mode}" == "read" then
    return wrk.format("GET", "/api/miners?userId=nobody")
  end
  local key = "${mode}" == "replay" and "bench-replay-" .. nonce or ("bench-" .. nonce .. "-" .. tid .. "-" .. counter)
  wrk.headers["Idempotency-Key"] = key
  return wrk.format("POST", "/api/miners", nil, ${JSON.stringify(body)})
end
`

const toMs = (value: string, unit: string) =>
  Number(value) * ({ us: 0.001, ms: 1, s: 1000, m: 60_000 } as Record<string, number>)[unit]!

const parseWrk = (out: string) => {
  const pct = (p: string) => {
    const m = new RegExp(`^\\s*${p}%\\s+([\\d.]+)(us|ms|s|m)\\s*$`, "m").exec(out)
    return m ? toMs(m[1]!, m[2]!) : Number.NaN
  }
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? Number.NaN)
  const requests = Number(/(\d+) requests in/.exec(out)?.[1] ?? 0)
  const non2xx = Number(/Non-2xx or 3xx responses:\s+(\d+)/.exec(out)?.[1] ?? 0)
  const errors = /Socket errors:.*/.exec(out)?.[0]
  return { rps, p50: pct("50"), p90: pct("90"), p99: pct("99"), requests, non2xx, errors }
}

export const flags = {
  duration: number(10, "how long wrk drives each scenario, s"),
  connections: number(32, "wrk's open connections"),
}

export const run = async ({ duration, connections }: FlagValues<typeof flags>) => {
  // wrk is a Debian package: installed with apt when missing (as root), like the stack's packages.
  if (spawnSync("wrk", ["--version"], { encoding: "utf8" }).error) installOsPackages(["wrk"])
  const dir = mkdtempSync(join(tmpdir(), "bench-api-"))
  const port = await freePort()

  const program = Effect.gen(function* () {
    yield* Layer.build(
      ApiServer.layer({ api: HashInsightApi, routes: HashInsightRoutes, port }).pipe(
        Layer.provide(Outbox.layer),
      ),
    )
    const sql = yield* SqlClient.SqlClient
    const tenant = yield* createTenant(`bench-${Date.now().toString(36)}`)
    const apiKey = Redacted.value(tenant.apiKey)
    const rows: Array<BenchRow> = []
    const notes: Array<string> = [
      `wrk ${duration}s, ${connections} connections, 2 threads, against Bun + PostgreSQL on this machine; server in the bench process, wrk in its own`,
      `a database of the run's own; ${warmUpSeconds} s of keyed writes and ANALYZE before the scenarios`,
    ]
    const scenarios = [
      ["POST /api/miners, unique Idempotency-Key", "unique"],
      ["POST /api/miners, replayed Idempotency-Key", "replay"],
      ["GET /api/miners (tenant read, no idempotency)", "read"],
    ] as const
    const wrk = (script: string, seconds: number) =>
      Effect.promise(async () => {
        const p = Bun.spawn(
          [
            "wrk",
            "-t2",
            `-c${connections}`,
            `-d${seconds}s`,
            "--latency",
            "-s",
            script,
            `http://127.0.0.1:${port}`,
          ],
          { stdout: "pipe", stderr: "pipe" },
        )
        const text = await new Response(p.stdout).text()
        await p.exited
        return text
      })
    // Warm-up on the run's fresh database: keyed writes until the JIT has compiled the path and the
    // tables hold thousands of rows, then statistics — analysed empty, the cached plans would scan
    // (see bench e2e).
    const warmScript = join(dir, "warm.lua")
    writeFileSync(warmScript, luaScript(apiKey, "unique"))
    yield* wrk(warmScript, warmUpSeconds)
    yield* sql`ANALYZE`
    for (const [scenario, mode] of scenarios) {
      const script = join(dir, `${mode}.lua`)
      writeFileSync(script, luaScript(apiKey, mode))
      const before = yield* sql<{
        n: number
      }>`SELECT count(*)::int AS n FROM miners WHERE tenant_id = ${tenant.id}`
      const load = loadavg()[0]!.toFixed(1)
      const cpuBefore = process.cpuUsage()
      const out = yield* wrk(script, duration)
      const cpu = process.cpuUsage(cpuBefore)
      const r = parseWrk(out)
      // The API's own CPU per answered request: steadier than throughput on a shared machine.
      const cpuPerRequest = (cpu.user + cpu.system) / 1000 / Math.max(r.requests, 1)
      // wrk stops counting at its deadline with requests still in flight: let those finish, so the
      // next scenario's count does not include them (a replay scenario executing writes, it seemed).
      yield* Effect.sleep("500 millis")
      const after = yield* sql<{
        n: number
      }>`SELECT count(*)::int AS n FROM miners WHERE tenant_id = ${tenant.id}`
      const executed = after[0]!.n - before[0]!.n
      rows.push(
        { system: "hashinsight", scenario, metric: "throughput", value: r.rps, unit: "requests/s" },
        { system: "hashinsight", scenario, metric: "p50", value: r.p50, unit: "ms" },
        { system: "hashinsight", scenario, metric: "p90", value: r.p90, unit: "ms" },
        { system: "hashinsight", scenario, metric: "p99", value: r.p99, unit: "ms" },
        {
          system: "hashinsight",
          scenario,
          metric: "api_cpu_per_request",
          value: Math.round(cpuPerRequest * 100) / 100,
          unit: "ms",
        },
      )
      notes.push(
        `${scenario}: ${r.requests} requests, ${r.non2xx} non-2xx, ${executed} writes executed, load average ${load} at start${r.errors ? `, ${r.errors}` : ""}`,
      )
    }
    report("api", rows, notes)
  })
  await Effect.runPromise(
    program.pipe(Effect.scoped, Effect.provide(Layer.mergeAll(Platform.layer, Outbox.layer))),
  )
}
