/** The operator routes' handlers: the health report as JSON with its status code, metrics as text. */
import { HttpApiBuilder, HttpServerResponse } from "@effect/platform"
import { Effect } from "effect"
import { HashInsightApi } from "../http/api.ts"
import { Health } from "./health.ts"
import { prometheusContentType, prometheusText } from "./prometheus.ts"

export const ObserveLive = HttpApiBuilder.group(HashInsightApi, "observe", (handlers) =>
  Effect.gen(function* () {
    const health = yield* Health
    return handlers
      .handleRaw("health", () =>
        Effect.map(health.report, (report) =>
          HttpServerResponse.unsafeJson(report, {
            status: report.status === "unhealthy" ? 503 : 200,
            headers: { "cache-control": "no-store" },
          }),
        ),
      )
      .handleRaw("metrics", () =>
        Effect.map(prometheusText, (text) =>
          HttpServerResponse.text(text, { contentType: prometheusContentType }),
        ),
      )
  }),
)
