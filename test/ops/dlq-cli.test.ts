import { describe, expect } from "bun:test"
import { Effect } from "effect"
import { consumers } from "../../src/hashinsight/consumers/index.ts"
import { retryPolicies } from "../../src/ops/dlq/policies.ts"
import type { DlqStatsReport } from "../../src/ops/dlq/stats.ts"
import { freePort } from "../../src/platform/stack/index.ts"
import { withClient } from "../support/database.ts"
import { effectTest } from "../support/effect.ts"
import { cli, cliJson, insertDlq, insertInbox, migratedScratch } from "./dlq-fixtures.ts"

describe("dlq CLI arguments", () => {
  effectTest(
    "bad flags, unknown or missing commands print the usage and exit 2 before touching the database",
    () =>
      Effect.gen(function* () {
        // Nothing listens here: a run that reached the database would exit 1, not 2.
        const env = { DATABASE_URL: `postgres://postgres@127.0.0.1:${yield* Effect.promise(freePort)}/none` }
        const cases = [
          [],
          ["frob"],
          ["--bogus"],
          ["list", "--frob"],
          ["list", "--limit", "0"],
          ["show", "x"],
          ["replay", "--id", "0"],
          ["show"],
        ]
        const runs = yield* Effect.forEach(cases, (args) => cli(args, env), { concurrency: 4 })
        for (const [i, r] of runs.entries()) {
          expect({ args: cases[i], code: r.code }).toEqual({ args: cases[i], code: 2 })
          expect(r.stderr).toContain("usage: bun run dlq <command>")
          expect(r.stderr).toContain("replay [--topic T] [--group G] [--hours N] [--limit N]")
          expect(r.stdout).toBe("")
        }
        expect(runs[3]!.stderr).toContain("unknown argument: '--frob'")
      }),
    { timeout: 30_000 },
  )

  effectTest(
    "an unreachable database is one line on stderr and exit 1, within seconds",
    () =>
      Effect.gen(function* () {
        const port = yield* Effect.promise(freePort)
        const r = yield* cli(["stats"], { DATABASE_URL: `postgres://postgres:secret@127.0.0.1:${port}/x` })
        expect(r.code).toBe(1)
        expect(r.stdout).toBe("")
        const lines = r.stderr.trim().split("\n")
        expect(lines).toHaveLength(1)
        expect(lines[0]).toStartWith(
          `error: database unreachable at postgres://postgres:***@127.0.0.1:${port}/x`,
        )
        expect(r.ms).toBeLessThan(8_000)
      }),
    { timeout: 20_000 },
  )
})

describe("dlq stats, list, show", () => {
  effectTest(
    "stats counts by topic, group and error tag, replay states, the deliveries entries stand for, oldest pending age and the windowed DLQ rate",
    () =>
      Effect.gen(function* () {
        const db = yield* migratedScratch
        const env = { DATABASE_URL: db.url }
        yield* Effect.gen(function* () {
          yield* insertDlq([
            { group: "g-a", topic: "events.a", errorTag: "HandlerFailed", hoursAgo: 3, occurrences: 4 },
            {
              group: "g-a",
              topic: "events.a",
              errorTag: "HandlerFailed",
              hoursAgo: 1,
              replayStatus: "replayed",
            },
            {
              group: "g-a",
              topic: "events.a",
              errorTag: "DecodeFailed",
              hoursAgo: 2,
              replayStatus: "failed",
            },
            { group: "g-b", topic: "events.b", errorTag: "HandlerFailed", hoursAgo: 30 },
            {
              group: "g-b",
              topic: "events.b",
              errorTag: "HandlerFailed",
              hoursAgo: 5,
              replayStatus: "replaying",
            },
          ])
          yield* insertInbox("g-a", 8, 1)
          yield* insertInbox("g-a", 2, 40)
          yield* insertInbox("g-b", 4, 2)
        }).pipe(withClient(db.url))

        const s = yield* cliJson<DlqStatsReport & { retryPolicies: unknown }>(["stats"], env)
        expect(s.windowHours).toBe(24)
        expect(s.totals).toEqual({
          total: 5,
          pending: 2,
          replaying: 1,
          replayed: 1,
          failed: 1,
          occurrences: 8,
        })
        expect(s.oldestPendingSeconds! / 3600).toBeCloseTo(30, 1)
        expect(s.breakdown).toEqual([
          {
            topic: "events.a",
            consumerGroup: "g-a",
            errorTag: "HandlerFailed",
            total: 2,
            pending: 1,
            replaying: 0,
            replayed: 1,
            failed: 0,
            occurrences: 5,
          },
          {
            topic: "events.b",
            consumerGroup: "g-b",
            errorTag: "HandlerFailed",
            total: 2,
            pending: 1,
            replaying: 1,
            replayed: 0,
            failed: 0,
            occurrences: 2,
          },
          {
            topic: "events.a",
            consumerGroup: "g-a",
            errorTag: "DecodeFailed",
            total: 1,
            pending: 0,
            replaying: 0,
            replayed: 0,
            failed: 1,
            occurrences: 1,
          },
        ])
        // Last 24 h: g-a 3 dead-lettered / 8 processed, g-b 1 / 4: dead-lettered ÷ (processed + dead-lettered).
        expect(s.window).toEqual({ dlq: 4, processed: 12, rate: 4 / 16 })
        expect(s.windowByGroup).toEqual([
          { consumerGroup: "g-a", dlq: 3, processed: 8, rate: 3 / 11 },
          { consumerGroup: "g-b", dlq: 1, processed: 4, rate: 1 / 5 },
        ])

        expect(s.retryPolicies).toEqual(retryPolicies(Object.values(consumers)))

        const wide = yield* cliJson<DlqStatsReport>(["stats", "--hours", "48"], env)
        expect(wide.window).toEqual({ dlq: 5, processed: 14, rate: 5 / 19 })

        const text = yield* cli(["stats"], env)
        expect(text.code).toBe(0)
        expect(text.stdout).toContain(
          "DLQ entries: 5 (pending 2, replaying 1, replayed 1, failed again 1) from 8 failed deliveries",
        )
        expect(text.stdout).toContain("Oldest pending: 1d 6h")
        expect(text.stdout).toContain("Last 24 h: 4 dead-lettered / 12 processed = DLQ rate 25.00%")
        expect(text.stdout).toMatch(/events\.a\s+g-a\s+HandlerFailed\s+2\s+1\s+0\s+1\s+0\s+5/)
        expect(text.stdout).toMatch(/events\.a\s+g-a\s+DecodeFailed\s+1\s+0\s+0\s+0\s+1\s+1/)
      }),
    { timeout: 30_000 },
  )

  effectTest(
    "list filters by topic, group, hours and status, pages with --after, and prints a table",
    () =>
      Effect.gen(function* () {
        const db = yield* migratedScratch
        const env = { DATABASE_URL: db.url }
        const ids = yield* insertDlq([
          { group: "g-a", topic: "events.a", hoursAgo: 1, occurrences: 3 },
          { group: "g-a", topic: "events.b", hoursAgo: 1 },
          { group: "g-b", topic: "events.a", hoursAgo: 1, replayStatus: "replayed" },
          { group: "g-a", topic: "events.a", hoursAgo: 50 },
          { group: "g-a", topic: "events.a", hoursAgo: 2, replayStatus: "failed" },
        ]).pipe(withClient(db.url))
        const idsOf = (args: ReadonlyArray<string>) =>
          Effect.map(cliJson<Array<{ id: number }>>(["list", ...args], env), (l) => l.map((e) => e.id))
        const [a, b, c, d, e] = ids as [number, number, number, number, number]
        expect(yield* idsOf([])).toEqual(ids)
        expect(yield* idsOf(["--topic", "events.a"])).toEqual([a, c, d, e])
        expect(yield* idsOf(["--group", "g-a", "--topic", "events.a"])).toEqual([a, d, e])
        expect(yield* idsOf(["--hours", "24"])).toEqual([a, b, c, e])
        expect(yield* idsOf(["--status", "failed"])).toEqual([e])
        expect(yield* idsOf(["--limit", "2"])).toEqual([a, b])
        expect(yield* idsOf(["--limit", "2", "--after", String(b)])).toEqual([c, d])

        const text = yield* cli(["list", "--limit", "2"], env)
        expect(text.code).toBe(0)
        expect(text.stdout).toMatch(/^ID\s+FAILED AT\s+TOPIC\s+GROUP\s+TYPE\s+ERROR\s+ATT\s+COUNT\s+STATUS/)
        expect(text.stdout).toMatch(new RegExp(`\\n\\s*${a}\\s.*HandlerFailed\\s+1\\s+3\\s+pending`))
        expect(text.stdout).toContain(`More may follow: add --after ${b}`)
        const bad = yield* cli(["list", "--status", "lost"], env)
        expect(bad.code).toBe(2)
      }),
    { timeout: 30_000 },
  )

  effectTest(
    "show prints one entry whole with its value decoded and its count of failed deliveries; an unknown id exits 1 with one line",
    () =>
      Effect.gen(function* () {
        const db = yield* migratedScratch
        const env = { DATABASE_URL: db.url }
        const eventId = crypto.randomUUID()
        const [id] = yield* insertDlq([
          {
            group: "g-a",
            topic: "events.a",
            key: "miner-7",
            value: JSON.stringify({ minerId: "m7", count: 3 }),
            headers: { id: eventId, eventType: "MinerAdded", tenantId: "t" },
            eventId,
            eventType: "MinerAdded",
            errorTag: "Fatal",
            errorMessage: "unknown model",
            attempts: 4,
            occurrences: 6,
            partition: 2,
            offset: 41,
          },
        ]).pipe(withClient(db.url))
        const e = yield* cliJson<Record<string, unknown>>(["show", String(id)], env)
        expect(e).toMatchObject({
          id,
          eventId,
          consumerGroup: "g-a",
          topic: "events.a",
          partition: 2,
          offset: "41",
          key: "miner-7",
          value: { minerId: "m7", count: 3 },
          rawValue: '{"minerId":"m7","count":3}',
          headers: { id: eventId, eventType: "MinerAdded", tenantId: "t" },
          errorTag: "Fatal",
          errorMessage: "unknown model",
          attempts: 4,
          occurrences: 6,
          replayStatus: "pending",
          replayCount: 0,
          history: [],
        })
        const text = yield* cli(["show", String(id)], env)
        expect(text.stdout).toContain("error:             Fatal: unknown model")
        expect(text.stdout).toContain("occurrences:       6")
        expect(text.stdout).toContain('"minerId": "m7"')
        expect(text.stdout).toContain("events.a [partition 2] @ offset 41")

        const missing = yield* cli(["show", "999999"], env)
        expect(missing.code).toBe(1)
        expect(missing.stderr.trim()).toBe("error: no DLQ entry with id 999999")
      }),
    { timeout: 30_000 },
  )
})
