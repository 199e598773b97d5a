/**
 * Reading `/metrics` scrapes in tests, and linting them with `promtool check metrics` (Debian's
 * `prometheus` package, installed by the stack when missing) — Prometheus' own parser judges the
 * format. npm's `parse-prometheus-text-format` (1.1.1, the only text parser there) was tried and
 * dropped: it merges a histogram's label sets into one (yunyu/parse-prometheus-text-format#13, the
 * fix #8 unmerged since 2019), and every SLO histogram here is labelled by group.
 */
import { spawnSync } from "node:child_process"
import { ensureTool } from "../../src/platform/stack/index.ts"

export interface Sample {
  readonly name: string
  readonly labels: Readonly<Record<string, string>>
  readonly value: number
}

const unescapeLabel = (v: string) => v.replace(/\\(.)/g, (_, c: string) => (c === "n" ? "\n" : c))

/** Every sample line of a scrape. */
export const samples = (text: string): ReadonlyArray<Sample> =>
  text.split("\n").flatMap((line) => {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line)
    if (!m) return []
    const labels = Object.fromEntries(
      [...(m[2] ?? "").matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)].map((l) => [
        l[1]!,
        unescapeLabel(l[2]!),
      ]),
    )
    return [{ name: m[1]!, labels, value: m[3] === "+Inf" ? Number.POSITIVE_INFINITY : Number(m[3]) }]
  })

/** Metric families by name, from the `# TYPE` lines. */
export const types = (text: string): ReadonlyMap<string, string> =>
  new Map([...text.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((m) => [m[1]!, m[2]!]))

const matches = (s: Sample, labels: Record<string, string>) =>
  Object.entries(labels).every(([k, v]) => s.labels[k] === v)

/** The value of the sample of `name` whose labels include `labels`; undefined when there is none. */
export const gaugeOf = (text: string, name: string, labels: Record<string, string> = {}) =>
  samples(text).find((s) => s.name === name && matches(s, labels))?.value

export interface Histogram {
  readonly count: number
  readonly sum: number
  /** Cumulative counts by upper bound, ascending, `+Inf` last. */
  readonly buckets: ReadonlyArray<readonly [number, number]>
}

/** The histogram `name` of the label set that includes `labels`; undefined when there is none. */
export const histogramOf = (text: string, name: string, labels: Record<string, string> = {}) => {
  const all = samples(text)
  const count = all.find((s) => s.name === `${name}_count` && matches(s, labels))
  if (!count) return undefined
  const own = (s: Sample) =>
    Object.entries(count.labels).every(([k, v]) => s.labels[k] === v) &&
    Object.keys(s.labels).length === Object.keys(count.labels).length + 1
  const buckets = all
    .filter((s) => s.name === `${name}_bucket` && own(s))
    .map((s) => [s.labels.le === "+Inf" ? Number.POSITIVE_INFINITY : Number(s.labels.le), s.value] as const)
    .sort((a, b) => a[0] - b[0])
  const sum = all.find((s) => s.name === `${name}_sum` && matches(s, count.labels))?.value ?? 0
  return { count: count.value, sum, buckets } satisfies Histogram
}

/** The bucket a quantile falls in, as Prometheus' histogram_quantile sees it: (lower, upper]. */
export const quantileBucket = (h: Histogram, q: number): readonly [number, number] => {
  const rank = q * h.count
  let lower = 0
  for (const [bound, n] of h.buckets) {
    if (n >= rank) return [lower, bound]
    lower = bound
  }
  return [lower, Number.POSITIVE_INFINITY]
}

/** Every sample name a scrape exposes (a histogram's `_bucket`, `_sum`, `_count` among them). */
export const exposedNames = (text: string): ReadonlySet<string> => new Set(samples(text).map((s) => s.name))

/** `promtool check metrics` on a scrape: its complaints, empty when it passes. */
export const promtoolCheckMetrics = (text: string) => {
  const r = spawnSync(ensureTool("promtool", "prometheus"), ["check", "metrics"], {
    input: text,
    encoding: "utf8",
  })
  return { code: r.status, output: `${r.stdout}${r.stderr}`.trim() }
}

/** Runs a tool of Prometheus' (`promtool`, `amtool`) in `cwd`: its exit code and output. */
export const runTool = (tool: "promtool" | "amtool", args: ReadonlyArray<string>, cwd?: string) => {
  const bin = ensureTool(tool, tool === "promtool" ? "prometheus" : "prometheus-alertmanager")
  const r = spawnSync(bin, [...args], { encoding: "utf8", cwd })
  return { code: r.status, output: `${r.stdout}${r.stderr}`.trim() }
}
