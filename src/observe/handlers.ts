/**
 * What the operator routes answer, for an application's `observe` group handlers: the health report
 * as JSON with its status code, metrics as text.
 */
import { HttpServerResponse } from "@effect/platform"
import { Effect } from "effect"
import { Health } from "./health.ts"
import { prometheusContentType, prometheusText } from "./prometheus.ts"

/** `GET /api/health`: 200, or 503 when unhealthy; never cached. */
export const healthResponse = Effect.flatMap(Health, (health) => health.report).pipe(
  Effect.map((report) =>
    HttpServerResponse.unsafeJson(report, {
      status: report.status === "unhealthy" ? 503 : 200,
      headers: { "cache-control": "no-store" },
    }),
  ),
)

/** `GET /metrics`: this process's metrics. */
export const metricsResponse = Effect.map(prometheusText, (text) =>
  HttpServerResponse.text(text, { contentType: prometheusContentType }),
)
