import { describe, expect } from "bun:test"
import { SqlClient } from "@effect/sql"
import { Effect } from "effect"
import { hashApiKey } from "../../src/http/tenants.ts"
import { effectTest } from "../support/effect.ts"
import { uniqueId } from "../support/ids.ts"
import { newTenant, startApi } from "./support.ts"

const keyTtlMs = 600

const setKey = (tenantId: string, key: string) =>
  Effect.flatMap(
    SqlClient.SqlClient,
    (sql) => sql`UPDATE tenants SET api_key_hash = ${hashApiKey(key)} WHERE id = ${tenantId}`,
  )

describe("API key cache", () => {
  effectTest("a rotated key keeps working for the cache TTL at most, the new key at once", () =>
    Effect.gen(function* () {
      const api = yield* startApi(undefined, { keyTtl: keyTtlMs })
      const t = yield* newTenant
      const list = (key: string) => Effect.map(api.call("/api/miners", { key }), (r) => r.status)
      expect(yield* list(t.key)).toBe(200)

      const rotated = uniqueId("rotated-key")
      yield* setKey(t.id, rotated)
      // Remembered: the old key is not looked up again within the TTL.
      expect(yield* list(t.key)).toBe(200)
      expect(yield* list(rotated)).toBe(200)
      yield* Effect.sleep(keyTtlMs + 200)
      expect(yield* list(t.key)).toBe(401)
      expect(yield* list(rotated)).toBe(200)
    }),
  )

  effectTest("an unknown key is not remembered: it works as soon as it exists", () =>
    Effect.gen(function* () {
      const api = yield* startApi(undefined, { keyTtl: 60_000 })
      const t = yield* newTenant
      const future = uniqueId("future-key")
      expect((yield* api.call("/api/miners", { key: future })).status).toBe(401)
      yield* setKey(t.id, future)
      expect((yield* api.call("/api/miners", { key: future })).status).toBe(200)
    }),
  )
})
