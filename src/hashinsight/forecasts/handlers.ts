/** Forecast reads through the SWR cache, one key per tenant and user. */
import { HttpApiBuilder } from "@effect/platform"
import { Effect } from "effect"
import { CurrentTenant } from "../../http/authentication.ts"
import { withTenant } from "../../platform/db.ts"
import { HashInsightApi } from "../api.ts"
import { cachePolicies, forecastsKey } from "../cache-keys.ts"
import { NotFound } from "../errors.ts"
import { cachedRead, databaseDown } from "../route-kit.ts"
import { Forecasts } from "./api.ts"
import { type ForecastRow, findForecasts } from "./read.ts"

const figuresOf = ({ subjectKind: _kind, subjectId: _id, ...figures }: ForecastRow) => figures

const loadForecasts = (tenantId: string, userId: string) =>
  withTenant(tenantId)(findForecasts(userId)).pipe(
    Effect.catchTags({ SqlError: databaseDown, ParseError: Effect.die }),
    Effect.flatMap((rows) => {
      if (rows.length === 0)
        return Effect.fail(new NotFound({ message: "no forecasts yet: the tenant has no market data" }))
      const portfolio = rows.find((r) => r.subjectKind === "portfolio")
      return Effect.succeed<Forecasts>({
        userId,
        portfolio: portfolio ? figuresOf(portfolio) : null,
        models: rows
          .filter((r) => r.subjectKind === "model")
          .map((r) => ({ modelId: r.subjectId, ...figuresOf(r) })),
      })
    }),
  )

export const ForecastsRoutes = HttpApiBuilder.group(HashInsightApi, "forecasts", (handlers) =>
  handlers.handle("getForecasts", ({ urlParams }) =>
    Effect.flatMap(CurrentTenant, (tenant) =>
      cachedRead(
        forecastsKey(tenant.id, urlParams.userId),
        cachePolicies.forecasts,
        Forecasts,
        loadForecasts(tenant.id, urlParams.userId),
      ),
    ),
  ),
)
