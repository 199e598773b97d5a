/**
 * Bearer-key authentication as an HttpApi middleware: resolves `Authorization: Bearer <key>` to
 * exactly one tenant and provides it as `CurrentTenant` to the handlers. A missing or unknown key
 * is 401; a tenant store that cannot answer is 503 (never a guess).
 */
import { HttpApiMiddleware, HttpApiSecurity } from "@effect/platform"
import { SqlClient } from "@effect/sql"
import { Context, Effect, Layer, Option, Redacted, Schema } from "effect"
import { ServiceUnavailable, Unauthorized } from "./problem.ts"
import { findTenantByKey, type Tenant } from "./tenants.ts"

export class CurrentTenant extends Context.Tag("CurrentTenant")<CurrentTenant, Tenant>() {}

export class Authentication extends HttpApiMiddleware.Tag<Authentication>()("Authentication", {
  failure: Schema.Union(Unauthorized, ServiceUnavailable),
  provides: CurrentTenant,
  security: { bearer: HttpApiSecurity.bearer },
}) {
  static readonly layer = Layer.effect(
    Authentication,
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      return Authentication.of({
        bearer: (token) => {
          const key = Redacted.value(token).trim()
          if (key === "")
            return Effect.fail(new Unauthorized({ detail: "send Authorization: Bearer <api key>" }))
          return findTenantByKey(key).pipe(
            Effect.provideService(SqlClient.SqlClient, sql),
            Effect.catchTag("SqlError", (e) =>
              Effect.zipRight(
                Effect.logWarning("tenant lookup failed", e),
                Effect.fail(new ServiceUnavailable({ detail: "the tenant store is unavailable" })),
              ),
            ),
            Effect.flatMap(
              Option.match({
                onNone: () => Effect.fail(new Unauthorized({ detail: "unknown API key" })),
                onSome: Effect.succeed,
              }),
            ),
          )
        },
      })
    }),
  )
}
