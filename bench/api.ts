/**
 * `bun run bench api [--duration S] [--connections N] [--rounds N]` — the HTTP write path with
 * idempotency on: `wrk` (a separate process, Debian package `wrk`) drives POST /api/miners with a
 * unique Idempotency-Key per request against the real API, PostgreSQL and outbox; then the replay
 * path (one key, every request a stored-response replay) and a tenant read. Each scenario runs
 * against ours and against the bare reference (bench/reference/api.ts: Bun.serve + node-postgres,
 * the same statements and guarantees, in a process of its own), alternating, so the ratio of their
 * CPU per answered request is the cost of our layers in one run on one machine. Besides wrk's
 * figures it reports each API process's CPU time per answered request and the load average, since
 * throughput on a shared 2-core machine mostly measures the neighbours.
 */
import { spawnSync } from "node:child_process"
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs"
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
const luaScript = (apiKey: string, system: string, mode: "unique" | "replay" | "read") => `
local counter = 0
local threads = {}
local nonce = "${system}-${Date.now().toString(36)}"
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
  duration: number(10, "how long wrk drives each scenario against each system, s"),
  connections: number(32, "wrk's open connections"),
  rounds: number(2, "alternating runs (ours, reference, …) the duration is split into"),
}

const systems = ["hashinsight", "reference"] as const
type System = (typeof systems)[number]

/** A process's CPU time so far, ms, from /proc (user + system ticks at the kernel's 100 Hz). */
const procCpuMs = (pid: number) => {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8")
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
  return (Number(fields[11]) + Number(fields[12])) * 10
}

/** The reference API in a process of its own, answering on `port` once it returns. */
const startReference = async (port: number) => {
  const child = Bun.spawn([process.execPath, join(import.meta.dir, "reference", "api.ts")], {
    env: { ...process.env, PORT: String(port) },
    stdout: "pipe",
    stderr: "inherit",
  })
  const reader = child.stdout.getReader()
  const first = await reader.read()
  if (!new TextDecoder().decode(first.value).includes("listening")) throw new Error("reference did not start")
  return child
}

interface Sample {
  readonly requests: number
  readonly seconds: number
  readonly cpuMs: number
  readonly p50: number
  readonly p90: number
  readonly p99: number
  readonly non2xx: number
  readonly errors: string | undefined
}

const mean = (xs: ReadonlyArray<number>) => xs.reduce((a, b) => a + b, 0) / xs.length
const round2 = (x: number) => Math.round(x * 100) / 100

export const run = async ({ duration, connections, rounds }: FlagValues<typeof flags>) => {
  // wrk is a Debian package: installed with apt when missing (as root), like the stack's packages.
  if (spawnSync("wrk", ["--version"], { encoding: "utf8" }).error) installOsPackages(["wrk"])
  const dir = mkdtempSync(join(tmpdir(), "bench-api-"))
  const ports = { hashinsight: await freePort(), reference: await freePort() }
  const reference = await startReference(ports.reference)
  const cpuMs: Record<System, () => number> = {
    hashinsight: () => {
      const u = process.cpuUsage()
      return (u.user + u.system) / 1000
    },
    reference: () => procCpuMs(reference.pid),
  }

  const program = Effect.gen(function* () {
    yield* Layer.build(
      ApiServer.layer({ api: HashInsightApi, routes: HashInsightRoutes, port: ports.hashinsight }).pipe(
        Layer.provide(Outbox.layer),
      ),
    )
    const sql = yield* SqlClient.SqlClient
    const tenants = {
      hashinsight: yield* createTenant(`bench-${Date.now().toString(36)}`),
      reference: yield* createTenant(`bench-reference-${Date.now().toString(36)}`),
    }
    const apiKey = (system: System) => Redacted.value(tenants[system].apiKey)
    const rows: Array<BenchRow> = []
    const notes: Array<string> = [
      `wrk ${duration}s per scenario and system in ${rounds} alternating runs, ${connections} connections, 2 threads, against Bun + PostgreSQL on this machine; ours in the bench process, the reference (bench/reference/api.ts) in its own, wrk in its own`,
      `a database of the run's own, a tenant per system; ${warmUpSeconds} s of keyed writes on each and ANALYZE before the scenarios`,
    ]
    const scenarios = [
      ["POST /api/miners, unique Idempotency-Key", "unique"],
      ["POST /api/miners, replayed Idempotency-Key", "replay"],
      ["GET /api/miners (tenant read, no idempotency)", "read"],
    ] as const
    const wrk = (system: System, script: string, seconds: number) =>
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
            `http://127.0.0.1:${ports[system]}`,
          ],
          { stdout: "pipe", stderr: "pipe" },
        )
        const text = await new Response(p.stdout).text()
        await p.exited
        return text
      })
    const minersOf = (system: System) =>
      Effect.map(
        sql<{ n: number }>`SELECT count(*)::int AS n FROM miners WHERE tenant_id = ${tenants[system].id}`,
        (r) => r[0]!.n,
      )
    // Warm-up on the run's fresh database: keyed writes until the JIT has compiled the path and the
    // tables hold thousands of rows, then statistics — analysed empty, the cached plans would scan
    // (see bench e2e).
    for (const system of systems) {
      const warmScript = join(dir, `warm-${system}.lua`)
      writeFileSync(warmScript, luaScript(apiKey(system), system, "unique"))
      yield* wrk(system, warmScript, warmUpSeconds)
    }
    yield* sql`ANALYZE`
    const seconds = Math.max(1, Math.round(duration / rounds))
    for (const [scenario, mode] of scenarios) {
      const samples: Record<System, Array<Sample>> = { hashinsight: [], reference: [] }
      const executed: Record<System, number> = { hashinsight: 0, reference: 0 }
      const load = loadavg()[0]!.toFixed(1)
      for (let i = 0; i < rounds; i++) {
        for (const system of systems) {
          const script = join(dir, `${mode}-${system}.lua`)
          // wrk numbers each run's requests from 1: unique keys need a nonce per run, while a replay
          // scenario's runs share their one key.
          if (i === 0 || mode !== "replay")
            writeFileSync(script, luaScript(apiKey(system), `${system}-${i}`, mode))
          const before = yield* minersOf(system)
          const cpuBefore = cpuMs[system]()
          const r = parseWrk(yield* wrk(system, script, seconds))
          const cpu = cpuMs[system]() - cpuBefore
          // wrk stops counting at its deadline with requests still in flight: let those finish, so
          // the next run's count does not include them (a replay scenario executing writes, it seemed).
          yield* Effect.sleep("500 millis")
          executed[system] += (yield* minersOf(system)) - before
          samples[system].push({ ...r, seconds, cpuMs: cpu })
        }
      }
      const perRequest = (s: ReadonlyArray<Sample>) =>
        mean(s.map((x) => x.cpuMs)) / Math.max(mean(s.map((x) => x.requests)), 1)
      for (const system of systems) {
        const s = samples[system]
        const requests = s.reduce((a, x) => a + x.requests, 0)
        rows.push(
          {
            system,
            scenario,
            metric: "throughput",
            value: round2(requests / (seconds * rounds)),
            unit: "requests/s",
          },
          { system, scenario, metric: "p50", value: round2(mean(s.map((x) => x.p50))), unit: "ms" },
          { system, scenario, metric: "p90", value: round2(mean(s.map((x) => x.p90))), unit: "ms" },
          { system, scenario, metric: "p99", value: round2(mean(s.map((x) => x.p99))), unit: "ms" },
          { system, scenario, metric: "api_cpu_per_request", value: round2(perRequest(s)), unit: "ms" },
        )
        notes.push(
          `${system}, ${scenario}: ${requests} requests, ${s.reduce((a, x) => a + x.non2xx, 0)} non-2xx, ${executed[system]} writes executed, load average ${load} at start${s.find((x) => x.errors)?.errors ? `, ${s.find((x) => x.errors)?.errors}` : ""}`,
        )
      }
      const ratios = samples.hashinsight.map((s, i) => {
        const ref = samples.reference[i]!
        return s.cpuMs / Math.max(s.requests, 1) / (ref.cpuMs / Math.max(ref.requests, 1))
      })
      rows.push({
        system: "hashinsight",
        scenario,
        metric: "api_cpu_ratio_to_reference",
        value: round2(perRequest(samples.hashinsight) / perRequest(samples.reference)),
        unit: "x",
      })
      notes.push(
        `${scenario}: CPU ratio ours/reference per round ${ratios.map((r) => r.toFixed(2)).join(", ")}`,
      )
    }
    report("api", rows, notes)
  })
  try {
    await Effect.runPromise(
      program.pipe(Effect.scoped, Effect.provide(Layer.mergeAll(Platform.layer, Outbox.layer))),
    )
  } finally {
    reference.kill("SIGTERM")
    await reference.exited
  }
}
