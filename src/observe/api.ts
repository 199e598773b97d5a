/**
 * The operator routes, without authentication (probes and scrapers carry no tenant key):
 * `GET /api/health` (200, or 503 when unhealthy) and `GET /metrics` (Prometheus text). An
 * application adds the group to its HttpApi with the names of its own health checks.
 */
import { HttpApiEndpoint, HttpApiGroup, HttpApiSchema, OpenApi } from "@effect/platform"
import { engineCheckNames, healthReport } from "./health.ts"
import { prometheusContentType } from "./prometheus.ts"

export const observeGroup = (checks: ReadonlyArray<string>) => {
  const report = healthReport(checks)
  return HttpApiGroup.make("observe")
    .add(
      HttpApiEndpoint.get("health", "/api/health")
        .addSuccess(report)
        .addError(report.annotations({ identifier: "UnhealthyReport" }), { status: 503 })
        .annotate(
          OpenApi.Summary,
          `Health checks (${[...engineCheckNames, ...checks].join(", ")}); 503 only when unhealthy`,
        ),
    )
    .add(
      HttpApiEndpoint.get("metrics", "/metrics")
        .addSuccess(HttpApiSchema.Text({ contentType: prometheusContentType }))
        .annotate(OpenApi.Summary, "This process's metrics in the Prometheus text format"),
    )
}
