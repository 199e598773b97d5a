/**
 * The monitoring under `deploy/`, checked by Prometheus' own tools: the scrape config and alert rules
 * (`promtool check config`), the rules on synthetic series (`promtool test rules`), the Alertmanager
 * example (`amtool check-config`), and the Grafana dashboard's shape. That every metric they read
 * exists in a live scrape is checked where the whole platform runs (test/platform/services.test.ts).
 */
import { describe, expect, test } from "bun:test"
import { readFileSync } from "node:fs"
import { join } from "node:path"
import { parse } from "yaml"
import { projectRoot } from "../../src/platform/project-root.ts"
import { alertRules, dashboard, deployDir, deployMetricNames, metricNames } from "../support/deploy.ts"
import { runTool } from "../support/prometheus.ts"

const compose = parse(readFileSync(join(projectRoot, "docker-compose.yml"), "utf8"), { merge: true }) as {
  services: Record<string, { volumes?: ReadonlyArray<string>; environment?: Record<string, string> }>
}

describe("deploy/ monitoring", () => {
  test("the Prometheus config and its rules pass promtool check config", () => {
    const r = runTool("promtool", ["check", "config", "prometheus.yml"], join(deployDir, "prometheus"))
    expect({ code: r.code, output: r.output }).toMatchObject({ code: 0 })
    expect(r.output).toContain("17 rules found")
  })

  test("the alert rules pass promtool test rules: lag 1,500 warns, 12,000 is critical, a 0.2% DLQ rate fires", () => {
    const r = runTool("promtool", ["test", "rules", "alerts.test.yml"], join(deployDir, "prometheus"))
    expect({ code: r.code, output: r.output }).toEqual({
      code: 0,
      output: expect.stringContaining("SUCCESS"),
    })
    const tests = readFileSync(join(deployDir, "prometheus/alerts.test.yml"), "utf8")
    for (const alert of ["ConsumerLagWarning", "ConsumerLagCritical", "DlqRateHigh", "ConsumerMemberGone"])
      expect(tests).toContain(`alertname: ${alert}`)
  })

  test("the rules the operator needs exist, each with a severity of warning or critical", () => {
    const rules = alertRules()
    for (const r of rules)
      expect({ alert: r.alert, severity: ["warning", "critical"].includes(r.labels.severity ?? "") }).toEqual(
        {
          alert: r.alert,
          severity: true,
        },
      )
    expect(rules.map((r) => r.alert)).toEqual(
      expect.arrayContaining([
        "ConsumerLagWarning",
        "ConsumerLagCritical",
        "ConsumerStalled",
        "ConsumerMemberGone",
        "WriteToVisibleSlow",
        "OutboxToKafkaSlow",
        "ConsumerProcessingSlow",
        "DlqRateHigh",
        "CacheHitRatioLow",
        "OutboxEventUnpublished",
        "RelaySlotInactive",
        "LagNotSampled",
      ]),
    )
  })

  test("the Alertmanager example passes amtool check-config and pages only on critical", () => {
    const file = join(deployDir, "alertmanager/alertmanager.yml")
    const r = runTool("amtool", ["check-config", file])
    expect({ code: r.code, output: r.output }).toMatchObject({ code: 0 })
    const config = parse(readFileSync(file, "utf8")) as {
      route: {
        receiver: string
        routes: ReadonlyArray<{ matchers: ReadonlyArray<string>; receiver: string }>
      }
      receivers: ReadonlyArray<{ name: string; slack_configs?: unknown; pagerduty_configs?: unknown }>
    }
    expect(config.route.routes.find((x) => x.receiver === "pagerduty")?.matchers).toEqual([
      'severity="critical"',
    ])
    expect(config.receivers.find((x) => x.name === "slack")?.slack_configs).toBeDefined()
    expect(config.receivers.find((x) => x.name === "pagerduty")?.pagerduty_configs).toBeDefined()
  })

  test("the Grafana dashboard: every panel queries the provisioned Prometheus, and the names it reads parse", () => {
    const d = dashboard()
    const datasource = parse(
      readFileSync(join(deployDir, "grafana/provisioning/datasources/prometheus.yml"), "utf8"),
    ) as { datasources: ReadonlyArray<{ uid: string }> }
    const uid = datasource.datasources[0]!.uid
    const panels = d.panels.filter((p) => p.type !== "row")
    expect(panels.length).toBeGreaterThan(20)
    for (const p of panels) {
      expect({ panel: p.title, uid: p.datasource?.uid }).toEqual({ panel: p.title, uid })
      expect({ panel: p.title, targets: (p.targets ?? []).length > 0 }).toEqual({
        panel: p.title,
        targets: true,
      })
      for (const t of p.targets ?? []) expect(metricNames(t.expr).length).toBeGreaterThan(0)
    }
    const names = deployMetricNames()
    for (const slo of [
      "consumer_write_to_visible_seconds_bucket",
      "relay_outbox_to_kafka_seconds_bucket",
      "consumer_event_processing_seconds_bucket",
      "consumer_group_lag_offsets",
      "dlq_ratio",
    ])
      expect(names.has(slo)).toBe(true)
  })

  test("docker-compose runs Prometheus with these files and a Grafana provisioned with the dashboard", () => {
    const volumes = (name: string) => (compose.services[name]?.volumes ?? []).join(" ")
    expect(volumes("prometheus")).toContain("./deploy/prometheus:/etc/prometheus")
    expect(volumes("grafana")).toContain("./deploy/grafana/provisioning:/etc/grafana/provisioning")
    expect(volumes("grafana")).toContain("./deploy/grafana/dashboards:/var/lib/grafana/dashboards")
    expect(volumes("alertmanager")).toContain("./deploy/alertmanager:/etc/alertmanager")
  })
})
