/**
 * An HttpApi served on Bun, with the edge around it: `/openapi.json` and `/docs` derived from the
 * API, the problem edge, tenant authentication, the idempotency store (and its purge) and the
 * responses of the API's declared errors. The application hands in its API and the layer of its
 * routes; what those need beyond the edge (the database's `SqlClient`, `Redis`, the `Outbox`, …)
 * is provided by whoever runs the server.
 */
import { type HttpApi, HttpApiBuilder, type HttpApiGroup, HttpApiSwagger, HttpServer } from "@effect/platform"
import { BunHttpServer } from "@effect/platform-bun"
import { type Duration, Effect, Layer } from "effect"
import { AppConfig } from "../platform/config.ts"
import { Authentication, defaultKeyTtl } from "./authentication.ts"
import { lastResort, maxBodyBytes, ProblemEdge } from "./edge.ts"
import { ErrorResponses } from "./error-responses.ts"
import { IdempotencyStore } from "./idempotency-store.ts"

export interface ApiServerOptions<
  Id extends string,
  Groups extends HttpApiGroup.HttpApiGroup.Any,
  E,
  R,
  RE,
  RR,
> {
  readonly api: HttpApi.HttpApi<Id, Groups, E, R>
  /** The handlers of every group of `api` (`HttpApiBuilder.group` layers, merged). */
  readonly routes: Layer.Layer<HttpApiGroup.HttpApiGroup.ToService<Id, Groups>, RE, RR>
  /** How long a known API key is trusted without asking the database (default 30 s). */
  readonly keyTtl?: Duration.DurationInput
}

/**
 * `HttpApiBuilder.serve` with the edge's last resort around the app itself: a middleware handed to
 * `serve` runs after the response has been sent, so it could neither answer nor add a header.
 */
const serve = HttpApiBuilder.httpApp.pipe(
  Effect.map((app) => HttpServer.serve(lastResort(app))),
  Layer.unwrapEffect,
  Layer.provide([HttpApiBuilder.Router.Live, HttpApiBuilder.Middleware.layer]),
)

const routesOf = <Id extends string, Groups extends HttpApiGroup.HttpApiGroup.Any, E, R, RE, RR>(
  options: ApiServerOptions<Id, Groups, E, R, RE, RR>,
) =>
  HttpApiBuilder.api(options.api).pipe(
    Layer.provide(options.routes),
    Layer.provide(Authentication.layerWith({ keyTtl: options.keyTtl ?? defaultKeyTtl })),
    Layer.provide(ErrorResponses.layer(options.api)),
    Layer.provideMerge(IdempotencyStore.layer),
  )

/**
 * Serves the API on `port` (0 = any free port; the bound address is logged) of `host` (default
 * loopback).
 */
const layer = <Id extends string, Groups extends HttpApiGroup.HttpApiGroup.Any, E, R, RE, RR>(
  options: ApiServerOptions<Id, Groups, E, R, RE, RR> & { readonly port: number; readonly host?: string },
) =>
  serve.pipe(
    Layer.provide(HttpApiSwagger.layer({ path: "/docs" })),
    Layer.provide(HttpApiBuilder.middlewareOpenApi({ path: "/openapi.json" })),
    Layer.provide(ProblemEdge.layer),
    Layer.provide(IdempotencyStore.layerPurge),
    Layer.provide(routesOf(options)),
    HttpServer.withLogAddress,
    // Bun's own limit backs up the edge's for bodies that arrive without a Content-Length.
    Layer.provide(
      BunHttpServer.layer({
        port: options.port,
        hostname: options.host ?? "127.0.0.1",
        maxRequestBodySize: 16 * maxBodyBytes,
      }),
    ),
  )

/** Serves the API on the configured `HOST` and `PORT`. */
const layerConfig = <Id extends string, Groups extends HttpApiGroup.HttpApiGroup.Any, E, R, RE, RR>(
  options: ApiServerOptions<Id, Groups, E, R, RE, RR>,
) => Layer.unwrapEffect(Effect.map(AppConfig, (c) => layer({ ...options, port: c.port, host: c.host })))

export const ApiServer = { layer, layerConfig }
