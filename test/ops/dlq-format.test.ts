import { describe, expect, test } from "bun:test"
import { formatAge, formatStats } from "../../src/ops/dlq/format.ts"
import { progressBar } from "../../src/ops/dlq/progress.ts"
import type { DlqStatsReport } from "../../src/ops/dlq/stats.ts"
import { table } from "../../src/platform/table.ts"

describe("dlq output formatting", () => {
  test("ages read as the two largest units", () => {
    expect(formatAge(0)).toBe("0s")
    expect(formatAge(59.9)).toBe("59s")
    expect(formatAge(3600 * 30 + 125)).toBe("1d 6h")
    expect(formatAge(7260)).toBe("2h 1m")
  })

  test("tables right-align numbers and left-align text under a rule", () => {
    const out = table(
      [
        { g: "alpha", n: 5 },
        { g: "b", n: 120 },
      ],
      [
        ["GROUP", (r) => r.g],
        ["N", (r) => r.n],
      ],
    )
    expect(out.split("\n")).toEqual(["GROUP    N", "-----  ---", "alpha    5", "b      120"])
  })

  test("stats show each group's retry policy with its nominal delays", () => {
    const report: DlqStatsReport = {
      windowHours: 24,
      totals: { total: 0, pending: 0, replaying: 0, replayed: 0, failed: 0, occurrences: 0 },
      oldestPendingSeconds: null,
      breakdown: [],
      window: { dlq: 0, processed: 0, rate: null },
      windowByGroup: [],
    }
    const text = formatStats(report, [
      {
        consumerGroup: "portfolio-recalc-group",
        maxAttempts: 3,
        baseDelayMs: 200,
        factor: 2,
        capMs: 10_000,
        jitter: 0.2,
        delaysMs: [200, 400],
      },
    ])
    expect(text).toContain("Oldest pending: none")
    expect(text).toContain("DLQ rate n/a")
    expect(text).toMatch(/portfolio-recalc-group\s+3\s+200, 400 \(±20%\)/)
  })

  test("the progress bar fills in proportion", () => {
    expect(progressBar(0, 10)).toBe(`[${".".repeat(30)}] 0/10`)
    expect(progressBar(5, 10)).toBe(`[${"#".repeat(15)}${".".repeat(15)}] 5/10`)
    expect(progressBar(0, 0)).toBe(`[${"#".repeat(30)}] 0/0`)
  })
})
