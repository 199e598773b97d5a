/**
 * The API served on Bun: routes, `/openapi.json`, `/docs`, `/api/health`, `/metrics`, the problem
 * edge, the idempotency store and the read cache, as one Layer that needs the database (`SqlClient`), `Redis` and the
 * `Outbox`. `bun run api`
 * serves it alone; `bun run services` runs the same Layer in-process next to the relay and consumers.
 */
import { HttpApiBuilder, HttpApiSwagger, HttpServer } from "@effect/platform"
import { BunHttpServer } from "@effect/platform-bun"
import { type Duration, Effect, Layer } from "effect"
import { Cache } from "../engine/cache/swr.ts"
import { CatalogueLive } from "../hashinsight/catalogue/handlers.ts"
import { CrmLive } from "../hashinsight/crm/handlers.ts"
import { ForecastsLive } from "../hashinsight/forecasts/handlers.ts"
import { HashInsightHealth } from "../hashinsight/health.ts"
import { MinersLive } from "../hashinsight/miners/handlers.ts"
import { OpsLive } from "../hashinsight/ops/handlers.ts"
import { PortfolioLive } from "../hashinsight/portfolio/handlers.ts"
import { TreasuryLive } from "../hashinsight/treasury/handlers.ts"
import { ObserveLive } from "../observe/handlers.ts"
import { AppConfig } from "../platform/config.ts"
import { HashInsightApi } from "./api.ts"
import { Authentication, defaultKeyTtl } from "./authentication.ts"
import { lastResort, maxBodyBytes, ProblemEdge } from "./edge.ts"
import { ErrorResponses } from "./error-responses.ts"
import { IdempotencyStore } from "./idempotency-store.ts"

export interface ServerOptions {
  /** How long a known API key is trusted without asking the database (default 30 s). */
  readonly keyTtl?: Duration.DurationInput
}

/** The API's routes and their services, without a server: for `serve` or a web handler. */
export const apiRoutes = (options: ServerOptions = {}) =>
  HttpApiBuilder.api(HashInsightApi).pipe(
    Layer.provide(
      Layer.mergeAll(
        CatalogueLive,
        MinersLive,
        PortfolioLive,
        ForecastsLive,
        OpsLive,
        TreasuryLive,
        CrmLive,
        ObserveLive.pipe(Layer.provide(HashInsightHealth)),
      ),
    ),
    Layer.provide(Cache.layer),
    Layer.provide(Authentication.layerWith({ keyTtl: options.keyTtl ?? defaultKeyTtl })),
    Layer.provide(ErrorResponses.layer(HashInsightApi)),
    Layer.provideMerge(IdempotencyStore.layer),
  )

/** Serves the API on `port` (0 = any free port; the bound address is logged). */
/**
 * `HttpApiBuilder.serve` with the edge's last resort around the app itself: a middleware handed to
 * `serve` runs after the response has been sent, so it could neither answer nor add a header.
 */
const serve = HttpApiBuilder.httpApp.pipe(
  Effect.map((app) => HttpServer.serve(lastResort(app))),
  Layer.unwrapEffect,
  Layer.provide([HttpApiBuilder.Router.Live, HttpApiBuilder.Middleware.layer]),
)

export const makeServer = (port: number, options: ServerOptions = {}) =>
  serve.pipe(
    Layer.provide(HttpApiSwagger.layer({ path: "/docs" })),
    Layer.provide(HttpApiBuilder.middlewareOpenApi({ path: "/openapi.json" })),
    Layer.provide(ProblemEdge),
    Layer.provide(IdempotencyStore.layerPurge),
    Layer.provide(apiRoutes(options)),
    HttpServer.withLogAddress,
    // Bun's own limit backs up the edge's for bodies that arrive without a Content-Length.
    Layer.provide(
      BunHttpServer.layer({ port, hostname: "127.0.0.1", maxRequestBodySize: 16 * maxBodyBytes }),
    ),
  )

/** The API on the configured `PORT`. */
export const ApiLive = Layer.unwrapEffect(Effect.map(AppConfig, (c) => makeServer(c.port)))
