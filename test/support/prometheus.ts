/**
 * Reading `/metrics` scrapes in tests: parsed with `parse-prometheus-text-format` (prom2json's
 * output shape) rather than by hand, and linted with `promtool check metrics` (Debian's
 * `prometheus` package, installed by the stack when missing).
 */
import { spawnSync } from "node:child_process"
import parse from "parse-prometheus-text-format"
import { ensurePromtool } from "../../src/platform/stack.ts"

export interface Family {
  readonly name: string
  readonly type: "COUNTER" | "GAUGE" | "HISTOGRAM" | "SUMMARY" | "UNTYPED"
  readonly metrics: ReadonlyArray<{
    readonly labels?: Record<string, string>
    readonly value?: string
    readonly buckets?: Record<string, string>
    readonly count?: string
    readonly sum?: string
  }>
}

export const families = (text: string): ReadonlyArray<Family> => parse(text) as ReadonlyArray<Family>

const labelled = (family: Family | undefined, labels: Record<string, string>) =>
  family?.metrics.find((m) => Object.entries(labels).every(([k, v]) => m.labels?.[k] === v))

/** The value of the sample of `name` whose labels include `labels`; undefined when there is none. */
export const gaugeOf = (text: string, name: string, labels: Record<string, string> = {}) => {
  const m = labelled(
    families(text).find((f) => f.name === name),
    labels,
  )
  return m?.value === undefined ? undefined : Number(m.value)
}

export interface Histogram {
  readonly count: number
  readonly sum: number
  /** Cumulative counts by upper bound, ascending, `+Inf` last. */
  readonly buckets: ReadonlyArray<readonly [number, number]>
}

export const histogramOf = (text: string, name: string, labels: Record<string, string> = {}) => {
  const m = labelled(
    families(text).find((f) => f.name === name && f.type === "HISTOGRAM"),
    labels,
  )
  if (m?.buckets === undefined) return undefined
  const buckets = Object.entries(m.buckets)
    .map(([le, n]) => [le === "+Inf" ? Number.POSITIVE_INFINITY : Number(le), Number(n)] as const)
    .sort((a, b) => a[0] - b[0])
  return { count: Number(m.count), sum: Number(m.sum), buckets } satisfies Histogram
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

/** Every metric name a scrape exposes, with the sample names Prometheus derives from histograms. */
export const exposedNames = (text: string): ReadonlySet<string> =>
  new Set(
    families(text).flatMap((f) =>
      f.type === "HISTOGRAM"
        ? [f.name, `${f.name}_bucket`, `${f.name}_sum`, `${f.name}_count`]
        : f.type === "SUMMARY"
          ? [f.name, `${f.name}_sum`, `${f.name}_count`]
          : [f.name],
    ),
  )

/** `promtool check metrics` on a scrape: its complaints, empty when it passes. */
export const promtoolCheckMetrics = (text: string) => {
  const r = spawnSync(ensurePromtool(), ["check", "metrics"], { input: text, encoding: "utf8" })
  return { code: r.status, output: `${r.stdout}${r.stderr}`.trim() }
}

export const promtool = (args: ReadonlyArray<string>, cwd?: string) => {
  const r = spawnSync(ensurePromtool(), [...args], { encoding: "utf8", cwd })
  return { code: r.status, output: `${r.stdout}${r.stderr}`.trim() }
}
