/**
 * Bearer-key authentication as an HttpApi middleware: resolves `Authorization: Bearer <key>` to
 * exactly one tenant and provides it as `CurrentTenant` to the handlers. A missing or unknown key
 * is 401; a tenant store that cannot answer is 503 (never a guess).
 *
 * Known keys are remembered in-process, by their hash, for `keyTtl` (30 s by default, at most
 * `keyCapacity` keys): the tenant lookup is not a database round trip per request. The price: a
 * deleted or rotated key keeps working for up to `keyTtl` in each API process that saw it. Unknown
 * keys and failed lookups are not remembered, so a new key works at once and an outage ends at once.
 */
import { HttpApiMiddleware, HttpApiSecurity } from "@effect/platform"
import { SqlClient } from "@effect/sql"
import { Cache, Context, Duration, Effect, Exit, Layer, Option, Redacted, Schema } from "effect"
import { databaseUnavailable, ServiceUnavailable, Unauthorized } from "./problem.ts"
import { findTenantByKeyHash, hashApiKey, type Tenant } from "./tenants.ts"

const tenantStoreDown = databaseUnavailable("tenant store")

export class CurrentTenant extends Context.Tag("hashinsight/http/CurrentTenant")<CurrentTenant, Tenant>() {}

export const defaultKeyTtl = Duration.seconds(30)
const keyCapacity = 10_000

export class Authentication extends HttpApiMiddleware.Tag<Authentication>()(
  "hashinsight/http/Authentication",
  {
    failure: Schema.Union(Unauthorized, ServiceUnavailable),
    provides: CurrentTenant,
    security: { bearer: HttpApiSecurity.bearer },
  },
) {
  static readonly layerWith = (options: { readonly keyTtl: Duration.DurationInput }) =>
    Layer.effect(
      Authentication,
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const tenants = yield* Cache.makeWith({
          capacity: keyCapacity,
          lookup: (keyHash: string) =>
            findTenantByKeyHash(keyHash).pipe(Effect.provideService(SqlClient.SqlClient, sql)),
          timeToLive: (exit) =>
            Exit.isSuccess(exit) && Option.isSome(exit.value) ? options.keyTtl : Duration.zero,
        })
        return Authentication.of({
          bearer: (token) => {
            const key = Redacted.value(token).trim()
            if (key === "")
              return Effect.fail(new Unauthorized({ detail: "send Authorization: Bearer <api key>" }))
            const keyHash = hashApiKey(key)
            // A zero time-to-live still answers from the cache within the same millisecond
            // (Effect's Cache expires at `now > deadline`), so unknown keys and failed lookups are
            // dropped explicitly: a key created a moment later must work at once.
            const forget = tenants.invalidate(keyHash)
            return tenants.get(keyHash).pipe(
              Effect.tap((tenant) => (Option.isNone(tenant) ? forget : Effect.void)),
              Effect.tapError(() => forget),
              Effect.catchTag("SqlError", tenantStoreDown),
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

  static readonly layer = Authentication.layerWith({ keyTtl: defaultKeyTtl })
}
