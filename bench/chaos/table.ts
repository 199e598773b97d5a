/**
 * The chaos run's report: one row per scenario with the audit's figures, then the notes and any
 * problems; and the same figures as contract rows (`{ system, scenario, metric, value, unit }`) for
 * `bench/results/chaos.json`.
 */
import type { BenchRow } from "../report.ts"
import { passed, type ScenarioResult } from "./chaos.ts"

export interface ChaosTable {
  readonly name: "chaos"
  readonly at: string
  readonly machine: { readonly cpus: number; readonly memGiB: number }
  readonly options: Record<string, unknown>
  readonly rows: ReadonlyArray<BenchRow>
  readonly scenarios: ReadonlyArray<ScenarioResult>
}

const seconds = (ms: number | undefined) => (ms === undefined ? "—" : (ms / 1000).toFixed(1))

const slowest = (r: ScenarioResult) =>
  r.recoveries.some((x) => x.ms === undefined)
    ? undefined
    : r.recoveries.reduce((m, x) => Math.max(m, x.ms ?? 0), 0)

const columns: ReadonlyArray<readonly [string, (r: ScenarioResult) => string]> = [
  ["scenario", (r) => r.scenario],
  ["writes accepted", (r) => String(r.audit?.writesAccepted ?? "—")],
  ["events delivered", (r) => (r.audit ? `${r.audit.eventsDelivered}/${r.audit.eventsCommitted}` : "—")],
  ["dup deliveries", (r) => String(r.audit?.duplicateDeliveries ?? "—")],
  ["dup effects", (r) => String(r.audit?.duplicateEffects ?? "—")],
  ["lost", (r) => String(r.audit?.lost ?? "—")],
  ["order violations", (r) => String(r.audit?.orderViolations ?? "—")],
  ["double executions", (r) => String(r.audit?.doubleExecutions ?? "—")],
  ["5xx (not 503)", (r) => (r.audit ? `${r.audit.serverErrors} (${r.audit.badServerErrors})` : "—")],
  ["DLQ (wrong)", (r) => (r.audit ? `${r.audit.dlqEntries} (${r.audit.dlqWrong})` : "—")],
  ["max lag", (r) => String(r.maxLag)],
  ["recover s (max)", (r) => (r.recoveries.length === 0 ? "—" : seconds(slowest(r)))],
  ["quiet s", (r) => seconds(r.quiescedMs)],
  ["result", (r) => (r.skipped ? `skipped: ${r.skipped}` : passed(r) ? "ok" : "FAILED")],
]

export const table = (results: ReadonlyArray<ScenarioResult>): string => {
  const cells = results.map((r) => columns.map(([, f]) => f(r)))
  const widths = columns.map(([h], i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)))
  const line = (c: ReadonlyArray<string>) =>
    c
      .map((v, i) => (i === 0 || i === c.length - 1 ? v.padEnd(widths[i]!) : v.padStart(widths[i]!)))
      .join("  ")
  const details = results.flatMap((r) => [
    ...r.notes.map((n) => `${r.scenario}: ${n}`),
    ...(r.recoveries.length > 0
      ? [`${r.scenario}: recovered in ${r.recoveries.map((x) => `${x.fault} ${seconds(x.ms)} s`).join(", ")}`]
      : []),
    ...(r.audit?.problems ?? []).map((p) => `${r.scenario}: PROBLEM ${p}`),
  ])
  return [
    line(columns.map(([h]) => h)),
    widths.map((w) => "-".repeat(w)).join("  "),
    ...cells.map(line),
    "",
    ...details,
    "",
    "recover: from a fault cleared (a kill: its moment) until every event committed before then was applied by every group; quiet: from the load's end until outbox backlog, lag and unapplied events were all 0",
  ].join("\n")
}

export const resultRows = (results: ReadonlyArray<ScenarioResult>): ReadonlyArray<BenchRow> =>
  results.flatMap((r) => {
    if (r.audit === undefined) return []
    const row = (metric: string, value: number, unit: string): BenchRow => ({
      system: "hashinsight",
      scenario: `chaos ${r.scenario}`,
      metric,
      value,
      unit,
    })
    const a = r.audit
    return [
      row("writes_accepted", a.writesAccepted, "writes"),
      row("events_delivered", a.eventsDelivered, "events"),
      row("duplicate_deliveries", a.duplicateDeliveries, "records"),
      row("duplicate_effects", a.duplicateEffects, "events"),
      row("lost", a.lost, "events"),
      row("order_violations", a.orderViolations, "events"),
      row("double_executions", a.doubleExecutions, "writes"),
      row("server_errors_not_503", a.badServerErrors, "responses"),
      row("dlq_wrong", a.dlqWrong, "entries"),
      row("max_lag", r.maxLag, "records"),
      ...(slowest(r) === undefined ? [] : [row("recover_max", slowest(r)!, "ms")]),
      ...(r.quiescedMs === undefined ? [] : [row("quiesce", r.quiescedMs, "ms")]),
    ]
  })
