/**
 * `HOST`: the API and the metrics server bind loopback unless told otherwise, and every address
 * with `HOST=0.0.0.0` — reachable then on the machine's own non-loopback address, as a container's
 * port mapping needs. Skipped on a machine with no such address.
 */
import { describe, expect } from "bun:test"
import { networkInterfaces } from "node:os"
import { Effect, Layer, Option } from "effect"
import { Outbox } from "../../src/engine/outbox.ts"
import { HashInsightApi } from "../../src/hashinsight/api.ts"
import { HashInsightRoutes } from "../../src/hashinsight/routes.ts"
import { ApiServer } from "../../src/http/server.ts"
import { MetricsServer } from "../../src/observe/metrics-server.ts"
import { AppConfig } from "../../src/platform/config.ts"
import { freePort } from "../../src/platform/stack/index.ts"
import { effectTest } from "../support/effect.ts"

const external = Object.values(networkInterfaces())
  .flat()
  .find((a) => a !== undefined && a.family === "IPv4" && !a.internal)?.address

/** The status of `GET url`, or the connection error's name. */
const reach = (url: string) =>
  Effect.promise(() =>
    fetch(url, { signal: AbortSignal.timeout(2_000) })
      .then((r) => r.status)
      .catch(() => "unreachable" as const),
  )

/** The API and the metrics server as `ApiServer.layerConfig` / `MetricsServer.layerConfig` start them, with `host`. */
const serveWith = (host: string | undefined) =>
  Effect.gen(function* () {
    const config = yield* AppConfig
    const [port, metricsPort] = [yield* Effect.promise(freePort), yield* Effect.promise(freePort)]
    const own = Layer.succeed(AppConfig, {
      ...config,
      port,
      metricsPort: Option.some(metricsPort),
      ...(host === undefined ? {} : { host }),
    })
    yield* Layer.build(
      Layer.mergeAll(
        ApiServer.layerConfig({ api: HashInsightApi, routes: HashInsightRoutes }).pipe(
          Layer.provide(Outbox.layer),
        ),
        MetricsServer.layerConfig,
      ).pipe(Layer.provide(own)),
    )
    return { port, metricsPort }
  })

describe("HOST", () => {
  effectTest.skipIf(external === undefined)(
    "by default the servers answer on loopback only; with HOST=0.0.0.0 on the machine's own address too",
    () =>
      Effect.gen(function* () {
        const local = yield* serveWith(undefined)
        expect(yield* reach(`http://127.0.0.1:${local.port}/api/health`)).toBe(200)
        expect(yield* reach(`http://127.0.0.1:${local.metricsPort}/metrics`)).toBe(200)
        expect(yield* reach(`http://${external}:${local.port}/api/health`)).toBe("unreachable")
        expect(yield* reach(`http://${external}:${local.metricsPort}/metrics`)).toBe("unreachable")

        const everywhere = yield* serveWith("0.0.0.0")
        expect(yield* reach(`http://${external}:${everywhere.port}/api/health`)).toBe(200)
        expect(yield* reach(`http://${external}:${everywhere.metricsPort}/metrics`)).toBe(200)
        expect(yield* reach(`http://127.0.0.1:${everywhere.port}/api/health`)).toBe(200)
      }),
  )
})
