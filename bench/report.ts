/**
 * Benchmark results in the contract format (`bench/results/<name>.json`): a table on stdout and a
 * JSON file. Rows of ours and a peer's must come from the same run.
 */
import { mkdirSync, writeFileSync } from "node:fs"
import { cpus, totalmem } from "node:os"
import { join } from "node:path"

export type BenchRow = {
  readonly system: string
  readonly scenario: string
  readonly metric: string
  readonly value: number
  readonly unit: string
}

export type BenchResult = {
  readonly name: string
  readonly at: string
  readonly machine: { readonly cpus: number; readonly memGiB: number }
  readonly rows: ReadonlyArray<BenchRow>
  readonly notes?: ReadonlyArray<string>
}

export const resultsDir = join(import.meta.dir, "results")

export const machine = () => ({ cpus: cpus().length, memGiB: Math.round(totalmem() / 2 ** 30) })

/** Prints the rows as an aligned table and writes the JSON result; returns the file path. */
export const report = (
  name: string,
  rows: ReadonlyArray<BenchRow>,
  notes: ReadonlyArray<string> = [],
): string => {
  const result: BenchResult = { name, at: new Date().toISOString(), machine: machine(), rows, notes }
  const header = ["system", "scenario", "metric", "value", "unit"] as const
  const cells = rows.map((r) => [r.system, r.scenario, r.metric, formatValue(r.value), r.unit])
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)))
  const line = (c: ReadonlyArray<string>) =>
    c.map((v, i) => (i === 3 ? v.padStart(widths[i]!) : v.padEnd(widths[i]!))).join("  ")
  console.log(`\n${name} — ${result.machine.cpus} cpus, ${result.machine.memGiB} GiB, ${result.at}`)
  console.log(line(header))
  console.log(widths.map((w) => "-".repeat(w)).join("  "))
  for (const c of cells) console.log(line(c))
  for (const n of notes) console.log(`note: ${n}`)
  mkdirSync(resultsDir, { recursive: true })
  const file = join(resultsDir, `${name}.json`)
  writeFileSync(file, `${JSON.stringify(result, null, 2)}\n`)
  console.log(`\nwrote ${file}`)
  return file
}

const formatValue = (v: number) => (Number.isInteger(v) ? String(v) : v >= 100 ? v.toFixed(0) : v.toFixed(2))

/** Percentile (nearest-rank) of unsorted samples. */
export const percentile = (samples: ReadonlyArray<number>, p: number): number => {
  if (samples.length === 0) return Number.NaN
  const sorted = [...samples].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!
}
