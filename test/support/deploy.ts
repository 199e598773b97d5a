/** The monitoring files under `deploy/`, and the metric names their queries read. */
import { readFileSync } from "node:fs"
import { join } from "node:path"
import { parse } from "yaml"
import { projectRoot } from "../../src/platform/project-root.ts"

export const deployDir = join(projectRoot, "deploy")

export interface AlertRule {
  readonly alert: string
  readonly expr: string
  readonly for?: string
  readonly labels: Record<string, string>
  readonly annotations: Record<string, string>
}

export const alertRules = (): ReadonlyArray<AlertRule> =>
  (
    parse(readFileSync(join(deployDir, "prometheus/alerts.yml"), "utf8")) as {
      groups: ReadonlyArray<{ rules: ReadonlyArray<AlertRule> }>
    }
  ).groups.flatMap((g) => g.rules)

export interface Panel {
  readonly type: string
  readonly title: string
  readonly datasource?: { readonly uid: string }
  readonly targets?: ReadonlyArray<{ readonly expr: string; readonly datasource?: { readonly uid: string } }>
}

export const dashboard = () =>
  JSON.parse(readFileSync(join(deployDir, "grafana/dashboards/hashinsight.json"), "utf8")) as {
    readonly uid: string
    readonly panels: ReadonlyArray<Panel>
  }

/** PromQL's functions, aggregations and keywords: every other identifier outside braces is a metric. */
const promqlWords = new Set([
  "sum",
  "min",
  "max",
  "avg",
  "count",
  "rate",
  "irate",
  "increase",
  "histogram_quantile",
  "by",
  "without",
  "on",
  "ignoring",
  "group_left",
  "group_right",
  "and",
  "or",
  "unless",
  "bool",
  "offset",
  "abs",
  "clamp_min",
  "clamp_max",
  "time",
  "vector",
  "scalar",
])

/** The metric names a PromQL expression reads. */
export const metricNames = (expr: string): ReadonlyArray<string> => {
  const bare = expr
    .replace(/\{[^}]*\}/g, " ") // label matchers
    .replace(/\[[^\]]*\]/g, " ") // range selectors
    .replace(/\b(by|without|on|ignoring)\s*\([^)]*\)/g, " ") // grouping labels
    .replace(/"[^"]*"/g, " ")
  return [...new Set([...bare.matchAll(/[a-zA-Z_:][a-zA-Z0-9_:]*/g)].map((m) => m[0]))].filter(
    (w) => !promqlWords.has(w) && !/^\d/.test(w),
  )
}

/**
 * Every metric a dashboard panel or an alert rule reads, but `up`: Prometheus makes that series
 * itself for every target.
 */
export const deployMetricNames = (): ReadonlySet<string> =>
  new Set(
    [
      ...alertRules().map((r) => r.expr),
      ...dashboard().panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr)),
    ]
      .flatMap(metricNames)
      .filter((n) => n !== "up"),
  )
