/**
 * The process's Effect metrics (every `Metric` the engine and the domain update) in the Prometheus
 * text exposition format 0.0.4, for `GET /metrics`. Counters are named `..._total` (one without the
 * suffix, as Effect's own fiber counters, gets it; counters that may go down become gauges), histograms
 * become `_bucket{le}` / `_sum` / `_count`, frequencies one counter sample per occurrence label,
 * summaries `{quantile}` / `_sum` / `_count`. Metric tags become labels.
 */
import { Effect, Metric, MetricState, Option } from "effect"
import type * as MetricPair from "effect/MetricPair"

export const prometheusContentType = "text/plain; version=0.0.4; charset=utf-8"

const escapeLabel = (value: string) => value.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n")
const escapeHelp = (value: string) => value.replace(/\\/g, "\\\\").replace(/\n/g, "\\n")
/** Prometheus names allow [a-zA-Z_:][a-zA-Z0-9_:]*; anything else becomes `_`. */
const metricName = (name: string) => name.replace(/[^a-zA-Z0-9_:]/g, "_").replace(/^([0-9])/, "_$1")

const labels = (pairs: ReadonlyArray<readonly [string, string]>) =>
  pairs.length === 0 ? "" : `{${pairs.map(([k, v]) => `${metricName(k)}="${escapeLabel(v)}"`).join(",")}}`

const number = (n: number | bigint) => {
  if (typeof n === "bigint") return n.toString()
  if (Number.isNaN(n)) return "NaN"
  if (n === Number.POSITIVE_INFINITY) return "+Inf"
  if (n === Number.NEGATIVE_INFINITY) return "-Inf"
  return String(n)
}

interface Family {
  readonly type: "counter" | "gauge" | "histogram" | "summary"
  readonly help: string
  readonly samples: Array<string>
}

const addPair = (families: Map<string, Family>, pair: MetricPair.MetricPair.Untyped) => {
  const key = pair.metricKey
  const name = metricName(key.name)
  const tags: Array<readonly [string, string]> = key.tags.map((t) => [t.key, t.value] as const)
  const state = pair.metricState
  const familyNamed = (named: string, type: Family["type"]) => {
    const existing = families.get(named)
    if (existing) return existing
    const created: Family = { type, help: Option.getOrElse(key.description, () => named), samples: [] }
    families.set(named, created)
    return created
  }
  const family = (type: Family["type"]) => familyNamed(name, type)
  if (MetricState.isCounterState(state)) {
    // Only an incremental counter only goes up; one that may go down (Effect's own
    // `effect_fiber_active`) is a gauge to Prometheus.
    const incremental = (key.keyType as { readonly incremental?: boolean }).incremental === true
    // A counter's samples end in `_total` (Effect's own `effect_fiber_started` does not).
    const counterName = incremental && !name.endsWith("_total") ? `${name}_total` : name
    const f = incremental ? familyNamed(counterName, "counter") : family("gauge")
    f.samples.push(`${counterName}${labels(tags)} ${number(state.count)}`)
  } else if (MetricState.isGaugeState(state)) {
    family("gauge").samples.push(`${name}${labels(tags)} ${number(state.value)}`)
  } else if (MetricState.isHistogramState(state)) {
    const f = family("histogram")
    // Effect's buckets are already cumulative: the count of samples at or below each boundary.
    for (const [bound, count] of state.buckets) {
      if (bound === Number.POSITIVE_INFINITY) continue
      f.samples.push(`${name}_bucket${labels([...tags, ["le", number(bound)]])} ${count}`)
    }
    f.samples.push(`${name}_bucket${labels([...tags, ["le", "+Inf"]])} ${state.count}`)
    f.samples.push(`${name}_sum${labels(tags)} ${number(state.sum)}`)
    f.samples.push(`${name}_count${labels(tags)} ${state.count}`)
  } else if (MetricState.isFrequencyState(state)) {
    const f = family("counter")
    for (const [occurrence, count] of state.occurrences)
      f.samples.push(`${name}${labels([...tags, ["key", occurrence]])} ${count}`)
  } else if (MetricState.isSummaryState(state)) {
    const f = family("summary")
    for (const [quantile, value] of state.quantiles)
      if (Option.isSome(value))
        f.samples.push(`${name}${labels([...tags, ["quantile", number(quantile)]])} ${number(value.value)}`)
    f.samples.push(`${name}_sum${labels(tags)} ${number(state.sum)}`)
    f.samples.push(`${name}_count${labels(tags)} ${state.count}`)
  }
}

/** Renders every metric this process has registered so far. */
export const prometheusText = Effect.map(Metric.snapshot, (pairs) => {
  const families = new Map<string, Family>()
  for (const pair of pairs) addPair(families, pair)
  const out: Array<string> = []
  for (const [name, f] of [...families].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    out.push(`# HELP ${name} ${escapeHelp(f.help)}`, `# TYPE ${name} ${f.type}`, ...f.samples)
  }
  return `${out.join("\n")}\n`
})
