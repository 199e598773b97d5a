import { describe, expect } from "bun:test"
import { spawn, spawnSync } from "node:child_process"
import { mkdtempSync } from "node:fs"
import { join } from "node:path"
import { Effect, Schedule } from "effect"
import { projectRoot } from "../../src/platform/project-root.ts"
import { freePort, pidAlive } from "../../src/platform/stack/index.ts"
import { scratchDatabase } from "../support/database.ts"
import { deployMetricNames } from "../support/deploy.ts"
import { effectTest } from "../support/effect.ts"
import { exposedNames, promtoolCheckMetrics } from "../support/prometheus.ts"

const childPids = (pid: number): Array<number> =>
  spawnSync("pgrep", ["-P", String(pid)], { encoding: "utf8" })
    .stdout.split("\n")
    .filter(Boolean)
    .map(Number)

describe("bun run services", () => {
  effectTest(
    "starts API, relay and consumers; --demo gives a living portfolio end to end; SIGINT drains and exits 0",
    () =>
      Effect.gen(function* () {
        const db = yield* scratchDatabase
        const port = yield* Effect.promise(() => freePort())
        const stackDir = mkdtempSync(join(projectRoot, ".stack", "services-test-"))
        const child = spawn("bun", ["src/bin/services.ts", "--demo"], {
          cwd: projectRoot,
          env: { ...process.env, DATABASE_URL: db.url, PORT: String(port), HASHINSIGHT_STACK_DIR: stackDir },
          stdio: ["ignore", "pipe", "pipe"],
        })
        let output = ""
        child.stdout.on("data", (d) => {
          output += d
        })
        child.stderr.on("data", (d) => {
          output += d
        })
        const exited = new Promise<number | null>((ok) => child.on("exit", (code) => ok(code)))
        const waitFor = (pattern: RegExp, seconds: number) =>
          Effect.promise(async () => {
            const until = Date.now() + seconds * 1000
            while (!pattern.test(output)) {
              if (Date.now() > until) throw new Error(`no ${pattern} within ${seconds} s; output:\n${output}`)
              await Bun.sleep(100)
            }
            return pattern.exec(output)!
          })

        const [, apiKey] = yield* waitFor(/Authorization: Bearer (hik_[A-Za-z0-9_-]+)/, 60)
        yield* waitFor(/demo loaded/, 60)
        for (const group of ["portfolio-recalc-group", "intel-group", "crm-sync-group"]) {
          yield* waitFor(new RegExp(`\\(${group}\\) running`), 60)
        }
        yield* waitFor(/relay active/, 60)

        // The demo's writes went HTTP → outbox → relay → Kafka → portfolio consumer → portfolio read.
        const portfolio = yield* Effect.promise(async () => {
          const until = Date.now() + 60_000
          while (Date.now() < until) {
            const r = await fetch(`http://127.0.0.1:${port}/api/portfolio/alice`, {
              headers: { authorization: `Bearer ${apiKey}` },
            })
            if (r.status === 200) return (await r.json()) as Record<string, unknown>
            await Bun.sleep(250)
          }
          throw new Error(`alice's portfolio never appeared; output:\n${output}`)
        })
        expect(portfolio.userId).toBe("alice")
        expect(Number(portfolio.totalHashrateThs)).toBeGreaterThan(0)

        // Health sees the WAL relay streaming from this database's slot; the relay and the members
        // serve their own metrics on the ports after PORT.
        const health = yield* Effect.promise(async () => {
          const r = await fetch(`http://127.0.0.1:${port}/api/health`)
          return {
            status: r.status,
            body: (await r.json()) as { checks: Record<string, Record<string, unknown>> },
          }
        })
        expect(health.status).toBe(200)
        expect(health.body.checks.outbox).toMatchObject({ mode: "wal", streaming: true })
        expect(health.body.checks.database!.status).toBe("healthy")
        // A member logs that it runs before its metrics server has bound (they start side by side).
        const scrape = (offset: number) =>
          Effect.tryPromise(() =>
            fetch(`http://127.0.0.1:${port + offset}/metrics`).then((r) => r.text()),
          ).pipe(Effect.retry(Schedule.spaced("200 millis").pipe(Schedule.upTo("15 seconds"))), Effect.orDie)
        const sample = (text: string, pattern: RegExp) => Number(pattern.exec(text)?.[1] ?? Number.NaN)
        expect(sample(yield* scrape(1), /^relay_events_published_total (\S+)$/m)).toBeGreaterThan(0)
        expect(
          sample(
            yield* scrape(2),
            /^consumer_events_processed_total\{group="portfolio-recalc-group"\} (\S+)$/m,
          ),
        ).toBeGreaterThan(0)

        // Every process's scrape passes promtool's lint, and together they hold every metric a
        // dashboard panel or an alert rule under deploy/ reads.
        const scrapes = yield* Effect.all([0, 1, 2, 3, 4].map(scrape))
        const exposed = new Set<string>()
        for (const [offset, text] of scrapes.entries()) {
          expect({ offset, ...promtoolCheckMetrics(text) }).toEqual({ offset, code: 0, output: "" })
          for (const name of exposedNames(text)) exposed.add(name)
        }
        const missing = [...deployMetricNames()].filter((n) => !exposed.has(n))
        expect(missing).toEqual([])

        const children = childPids(child.pid!)
        expect(children.length).toBe(5)
        child.kill("SIGINT")
        const code = yield* Effect.promise(() => exited)
        expect(code).toBe(0)
        for (const pid of children) expect(pidAlive(pid)).toBe(false)
      }),
    { timeout: 180_000 },
  )
})
