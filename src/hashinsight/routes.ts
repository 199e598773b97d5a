/**
 * The handlers of every group of `HashInsightApi`, with the services only they use (the read
 * cache, the miners, health and the lag monitor over HashInsight's relay slot, consumer groups and
 * own checks); the
 * edge and the platform's services are provided by whoever serves them (`ApiServer`).
 */
import { HttpApiBuilder } from "@effect/platform"
import { Layer } from "effect"
import { Cache } from "../engine/cache/swr.ts"
import { schemasResponse } from "../http/schemas-api.ts"
import { healthResponse, metricsResponse } from "../observe/handlers.ts"
import { Health } from "../observe/health.ts"
import { LagMonitor } from "../observe/lag.ts"
import { HashInsightApi } from "./api.ts"
import { CatalogueRoutes } from "./catalogue/handlers.ts"
import { watchedGroups } from "./consumers/index.ts"
import { CrmRoutes } from "./crm/handlers.ts"
import { ForecastsRoutes } from "./forecasts/handlers.ts"
import { healthChecks } from "./health.ts"
import { MinersRoutes } from "./miners/handlers.ts"
import { OpsRoutes } from "./ops/handlers.ts"
import { PortfolioRoutes } from "./portfolio/handlers.ts"
import { topics } from "./topics.ts"
import { TreasuryRoutes } from "./treasury/handlers.ts"

export const ObserveRoutes = HttpApiBuilder.group(HashInsightApi, "observe", (handlers) =>
  handlers.handleRaw("health", () => healthResponse).handleRaw("metrics", () => metricsResponse),
)

export const SchemasRoutes = HttpApiBuilder.group(HashInsightApi, "schemas", (handlers) =>
  handlers.handle("schemas", schemasResponse(topics)),
)

const health = Health.layer({ groups: watchedGroups, checks: healthChecks }).pipe(
  Layer.provide(LagMonitor.layer({ groups: watchedGroups })),
)

export const HashInsightRoutes = Layer.mergeAll(
  CatalogueRoutes,
  MinersRoutes,
  PortfolioRoutes,
  ForecastsRoutes,
  OpsRoutes,
  TreasuryRoutes,
  CrmRoutes,
  ObserveRoutes.pipe(Layer.provide(health)),
  SchemasRoutes,
).pipe(Layer.provide(Cache.layer))
