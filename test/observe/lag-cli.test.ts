/** `bun run lag`: the table, `--json`, `--watch`, and the usage on a bad flag, against the suite's Kafka. */
import { describe, expect } from "bun:test"
import { Effect } from "effect"
import { crmTopic } from "../../src/hashinsight/topics.ts"
import type { LagSample } from "../../src/observe/lag.ts"
import { projectRoot } from "../../src/platform/project-root.ts"
import { produce, workRecord } from "../support/consumer-fixtures.ts"
import { effectTest } from "../support/effect.ts"

const lag = (args: ReadonlyArray<string>, killAfterMs?: number) =>
  Effect.promise(async () => {
    const proc = Bun.spawn([process.execPath, "src/bin/lag.ts", ...args], {
      cwd: projectRoot,
      env: { ...process.env, NODE_NO_WARNINGS: "1" },
      stdout: "pipe",
      stderr: "pipe",
    })
    const timer = killAfterMs === undefined ? undefined : setTimeout(() => proc.kill("SIGINT"), killAfterMs)
    const [stdout, stderr, code] = await Promise.all([
      new Response(proc.stdout).text(),
      new Response(proc.stderr).text(),
      proc.exited,
    ])
    clearTimeout(timer)
    return { stdout, stderr, code }
  })

describe("bun run lag", () => {
  effectTest(
    "prints every HashInsight group's lag per partition (end minus committed) with its level; --json; --watch samples again; a bad flag prints the usage and exits 2",
    () =>
      Effect.gen(function* () {
        // A record on a topic crm-sync-group reads, so that topic has partitions to show.
        yield* produce(crmTopic.name, [workRecord({ label: "lag-cli" })])

        const json = yield* lag(["--json"])
        expect(json.code).toBe(0)
        const sample = JSON.parse(json.stdout) as LagSample
        expect(sample.groups.map((g) => g.group).sort()).toEqual([
          "crm-sync-group",
          "intel-group",
          "portfolio-recalc-group",
        ])
        const crm = sample.groups.find((g) => g.group === "crm-sync-group")!
        expect(crm.partitions.filter((p) => p.topic === crmTopic.name).length).toBeGreaterThan(0)
        for (const g of sample.groups) {
          for (const p of g.partitions) expect(p.lag).toBe(p.committed === null ? p.lag : p.end - p.committed)
          expect(g.lag).toBe(g.partitions.reduce((n, p) => n + p.lag, 0))
          expect(g.level).toBe(g.lag >= 10_000 ? "critical" : g.lag >= 1_000 ? "warning" : "ok")
        }
        expect(sample.total).toBe(sample.groups.reduce((n, g) => n + g.lag, 0))

        const text = yield* lag([])
        expect(text.code).toBe(0)
        expect(text.stdout).toMatch(/GROUP\s+TOPIC\s+PARTITION\s+END\s+COMMITTED\s+LAG\s+SECONDS\s+STALLED/)
        expect(text.stdout).toMatch(
          new RegExp(`crm-sync-group\\s+${crmTopic.name.replace(".", "\\.")}\\s+\\d`),
        )
        expect(text.stdout).toMatch(/Total lag: \d+ \((ok|warning|critical)\)/)

        // --watch prints a sample per interval until interrupted.
        const watched = yield* lag(["--watch", "--json", "--interval", "1"], 3_500)
        const lines = watched.stdout.trim().split("\n")
        expect(lines.length).toBeGreaterThanOrEqual(2)
        for (const line of lines) expect((JSON.parse(line) as LagSample).groups).toHaveLength(3)

        const bad = yield* lag(["--bogus"])
        expect(bad.code).toBe(2)
        expect(bad.stderr).toContain("usage: bun run lag [--json] [--watch] [--interval N]")
      }),
    { timeout: 60_000 },
  )
})
