/** Operations handlers: each write is the domain's row + event in the request's tenant transaction. */
import { HttpApiBuilder } from "@effect/platform"
import { Effect, Option } from "effect"
import { CurrentTenant } from "../../http/authentication.ts"
import { withTenant } from "../../platform/db.ts"
import { HashInsightApi } from "../api.ts"
import { NotFound } from "../errors.ts"
import { databaseDown, tenantWrite } from "../route-kit.ts"
import { Incident, RecordedMarketData } from "./api.ts"
import { latestMarketData, updateMarketData } from "./market-data.ts"
import { reportSiteIncident } from "./site-incident.ts"

const ourData = { ParseError: Effect.die, OutboxOutsideTransaction: Effect.die } as const

export const OpsRoutes = HttpApiBuilder.group(HashInsightApi, "ops", (handlers) =>
  handlers
    .handle(
      "postMarketData",
      ({ payload }) =>
        tenantWrite(201, RecordedMarketData, (tenantId) =>
          updateMarketData(tenantId, payload).pipe(
            Effect.map((m) => ({ ...m, at: new Date(m.at) })),
            Effect.catchTags(ourData),
          ),
        ),
      { uninterruptible: true },
    )
    .handle("getMarketData", () =>
      Effect.gen(function* () {
        const tenant = yield* CurrentTenant
        const latest = yield* withTenant(tenant.id)(latestMarketData).pipe(
          Effect.catchTags({ SqlError: databaseDown, ParseError: Effect.die }),
        )
        return yield* Option.match(latest, {
          onNone: () => Effect.fail(new NotFound({ message: "no market data yet" })),
          onSome: Effect.succeed,
        })
      }),
    )
    .handle(
      "reportIncident",
      ({ payload }) =>
        tenantWrite(201, Incident, (tenantId) =>
          reportSiteIncident(tenantId, payload).pipe(
            Effect.map((i) => ({ ...i, at: new Date(i.at) })),
            Effect.catchTags(ourData),
          ),
        ),
      { uninterruptible: true },
    ),
)
