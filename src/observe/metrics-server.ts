/**
 * `GET /metrics` for processes without the API — the relay and the consumer members — on
 * `METRICS_PORT` when it is set (nothing is served when it is not). `bun run services` gives each
 * of its children one, next to the API's `PORT`.
 */
import { HttpRouter, HttpServer, HttpServerResponse } from "@effect/platform"
import { BunHttpServer } from "@effect/platform-bun"
import { Cause, Effect, Layer, Option } from "effect"
import { AppConfig } from "../platform/config.ts"
import { prometheusContentType, prometheusText } from "./prometheus.ts"

const router = HttpRouter.empty.pipe(
  HttpRouter.get(
    "/metrics",
    Effect.map(prometheusText, (text) =>
      HttpServerResponse.text(text, { contentType: prometheusContentType }),
    ),
  ),
)

/** Serves this process's metrics on `METRICS_PORT` of `HOST`, if the port is set. */
const layerConfig = Layer.unwrapEffect(
  Effect.map(AppConfig, (config) =>
    Option.match(config.metricsPort, {
      onNone: () => Layer.empty,
      onSome: (p) =>
        HttpServer.serve(router).pipe(
          HttpServer.withLogAddress,
          Layer.provide(BunHttpServer.layer({ port: p, hostname: config.host })),
          // A taken port costs the metrics, never the process (a restart would only meet it again).
          Layer.catchAllCause((cause) =>
            Layer.effectDiscard(
              Effect.logWarning(`metrics not served: port ${p} is unavailable`, Cause.squash(cause)),
            ),
          ),
        ),
    }),
  ),
)

export const MetricsServer = { layerConfig }
