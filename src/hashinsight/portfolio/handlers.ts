/** Portfolio reads: the stored figures through the SWR cache, one key per tenant and user. */
import { HttpApiBuilder } from "@effect/platform"
import { Effect, Option } from "effect"
import { CurrentTenant } from "../../http/authentication.ts"
import { withTenant } from "../../platform/db.ts"
import { HashInsightApi } from "../api.ts"
import { cachePolicies, portfolioKey } from "../cache-keys.ts"
import { NotFound } from "../errors.ts"
import { cachedRead, databaseDown } from "../route-kit.ts"
import { PortfolioView } from "./api.ts"
import { findPortfolio } from "./read.ts"

/** No portfolio yet is a failure, not a value: nothing is cached until the consumer writes one. */
const loadPortfolio = (tenantId: string, userId: string) =>
  withTenant(tenantId)(findPortfolio(userId)).pipe(
    Effect.catchTags({ SqlError: databaseDown, ParseError: Effect.die }),
    Effect.flatMap(
      Option.match({
        onNone: () => Effect.fail(new NotFound({ message: `no portfolio for user ${userId} yet` })),
        onSome: Effect.succeed,
      }),
    ),
  )

export const PortfolioRoutes = HttpApiBuilder.group(HashInsightApi, "portfolio", (handlers) =>
  handlers.handle("getPortfolio", ({ path }) =>
    Effect.flatMap(CurrentTenant, (tenant) =>
      cachedRead(
        portfolioKey(tenant.id, path.userId),
        cachePolicies.portfolio,
        PortfolioView,
        loadPortfolio(tenant.id, path.userId),
      ),
    ),
  ),
)
