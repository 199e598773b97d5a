/**
 * Tenants and their API keys. A key is shown once, at creation; only its SHA-256 is stored
 * (`tenants.api_key_hash`), so a database leak does not leak usable keys. Lookups run as the
 * connecting (operator) role: authentication must see every tenant before one is chosen.
 */
import { createHash, randomBytes } from "node:crypto"
import { SqlClient } from "@effect/sql"
import { Effect, Option, Redacted } from "effect"

export interface Tenant {
  readonly id: string
  readonly name: string
}

export const hashApiKey = (key: string) => createHash("sha256").update(key).digest("hex")

const newApiKey = () => `hik_${randomBytes(32).toString("base64url")}`

/** Creates a tenant and returns it with its API key (the only time the key is available). */
export const createTenant = Effect.fn("Tenants.create")(function* (name: string) {
  const sql = yield* SqlClient.SqlClient
  const id = Bun.randomUUIDv7()
  const apiKey = newApiKey()
  yield* sql`INSERT INTO tenants (id, name, api_key_hash) VALUES (${id}, ${name}, ${hashApiKey(apiKey)})`
  return { id, name, apiKey: Redacted.make(apiKey) }
})

/** The tenant whose API key hashes to `keyHash` (see `hashApiKey`), if any. */
export const findTenantByKeyHash = Effect.fn("Tenants.findByKeyHash")(function* (keyHash: string) {
  const sql = yield* SqlClient.SqlClient
  const rows = yield* sql<Tenant>`SELECT id, name FROM tenants WHERE api_key_hash = ${keyHash}`
  return Option.fromNullable(rows[0])
})
