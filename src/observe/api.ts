/**
 * The operator routes, without authentication (probes and scrapers carry no tenant key):
 * `GET /api/health` (200, or 503 when unhealthy) and `GET /metrics` (Prometheus text).
 */
import { HttpApiEndpoint, HttpApiGroup, HttpApiSchema, OpenApi } from "@effect/platform"
import { HealthReport } from "./health.ts"
import { prometheusContentType } from "./prometheus.ts"

export class ObserveGroup extends HttpApiGroup.make("observe")
  .add(
    HttpApiEndpoint.get("health", "/api/health")
      .addSuccess(HealthReport)
      .addError(HealthReport.annotations({ identifier: "UnhealthyReport" }), { status: 503 })
      .annotate(
        OpenApi.Summary,
        "Seven checks (database, redis, outbox, kafka_consumer, dlq, forecast, cache); 503 only when unhealthy",
      ),
  )
  .add(
    HttpApiEndpoint.get("metrics", "/metrics")
      .addSuccess(HttpApiSchema.Text({ contentType: prometheusContentType }))
      .annotate(OpenApi.Summary, "This process's metrics in the Prometheus text format"),
  ) {}
