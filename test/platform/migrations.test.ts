import { describe, expect } from "bun:test"
import { spawnSync } from "node:child_process"
import { cpSync, mkdtempSync, readdirSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { SqlClient } from "@effect/sql"
import { Effect } from "effect"
import { MigrationChecksumMismatch, migrate, migrationsDir } from "../../src/platform/migrator.ts"
import { scratchDatabase, withClient } from "../support/database.ts"
import { effectTest } from "../support/effect.ts"

const fileCount = readdirSync(migrationsDir).filter((f) => f.endsWith(".sql")).length

describe("bun run migrate", () => {
  effectTest("applies every file once; a second run applies nothing", () =>
    Effect.gen(function* () {
      const db = yield* scratchDatabase
      const first = yield* migrate().pipe(withClient(db.url))
      expect(first.applied).toHaveLength(fileCount)
      expect(first.applied[0]).toBe("000_initial_cdc_schema.sql")
      const second = yield* migrate().pipe(withClient(db.url))
      expect(second.applied).toEqual([])
      expect(second.skipped).toBe(fileCount)
    }),
  )

  effectTest("refuses to run when an applied file's checksum changed", () =>
    Effect.gen(function* () {
      const db = yield* scratchDatabase
      const dir = mkdtempSync(join(tmpdir(), "migrations-"))
      cpSync(migrationsDir, dir, { recursive: true })
      yield* migrate(dir).pipe(withClient(db.url))
      writeFileSync(join(dir, "002_inbox_idempotency.sql"), "-- edited after it was applied\nSELECT 1;\n")
      writeFileSync(join(dir, "900_later.sql"), "CREATE TABLE later_one (id int);\n")
      const error = yield* migrate(dir).pipe(withClient(db.url), Effect.flip)
      expect(error).toBeInstanceOf(MigrationChecksumMismatch)
      expect(error.message).toContain("002_inbox_idempotency.sql was changed after it was applied")
      // Nothing after the tampered file ran either.
      const later = yield* withClient(db.url)(
        Effect.flatMap(SqlClient.SqlClient, (sql) => sql`SELECT to_regclass('later_one') AS t`),
      )
      expect(later[0]?.t).toBeNull()
    }),
  )

  effectTest("each file also runs as-is with psql -f, in order", () =>
    Effect.gen(function* () {
      const db = yield* scratchDatabase
      for (const f of readdirSync(migrationsDir)
        .filter((n) => n.endsWith(".sql"))
        .sort()) {
        const r = spawnSync("psql", [db.url, "-v", "ON_ERROR_STOP=1", "-q", "-f", join(migrationsDir, f)], {
          encoding: "utf8",
          env: { ...process.env, PGOPTIONS: "-c client_min_messages=warning" },
        })
        expect({ file: f, code: r.status, err: r.stderr.trim() }).toEqual({ file: f, code: 0, err: "" })
      }
    }),
  )
})

describe("schema", () => {
  effectTest("the outbox publication exists and publishes inserts only", () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const pubs = yield* sql<{ pubinsert: boolean; pubupdate: boolean; pubdelete: boolean; tables: string }>`
        SELECT p.pubinsert, p.pubupdate, p.pubdelete,
               (SELECT string_agg(tablename, ',') FROM pg_publication_tables t WHERE t.pubname = p.pubname) AS tables
        FROM pg_publication p WHERE p.pubname = 'hashinsight_outbox'`
      expect(pubs).toEqual([{ pubinsert: true, pubupdate: false, pubdelete: false, tables: "event_outbox" }])
    }),
  )

  effectTest("RLS is enabled and forced on every table with tenant data the migrations create", () =>
    Effect.gen(function* () {
      // A freshly migrated database, so tables other tests create for themselves don't count.
      const db = yield* scratchDatabase
      yield* migrate().pipe(withClient(db.url))
      const tables = yield* withClient(db.url)(
        Effect.flatMap(
          SqlClient.SqlClient,
          (sql) => sql<{ table: string; enabled: boolean; forced: boolean; policies: number }>`
            SELECT c.relname AS table, c.relrowsecurity AS enabled, c.relforcerowsecurity AS forced,
                   (SELECT count(*)::int FROM pg_policy p WHERE p.polrelid = c.oid) AS policies
            FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = 'public' AND c.relkind = 'r'
              AND (EXISTS (SELECT 1 FROM pg_attribute a
                           WHERE a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped)
                   OR c.relname = 'tenants')
            ORDER BY 1`,
        ),
      )
      expect(tables.map((t) => t.table)).toContain("miners")
      for (const t of tables) {
        expect({ ...t, policies: t.policies > 0 }).toEqual({
          ...t,
          enabled: true,
          forced: true,
          policies: true,
        })
      }
    }),
  )

  effectTest("the tenant role is no superuser and cannot bypass RLS; without a tenant it sees no rows", () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const [role] = yield* sql<{ rolsuper: boolean; rolbypassrls: boolean }>`
        SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = 'hashinsight_app'`
      expect(role).toEqual({ rolsuper: false, rolbypassrls: false })
      const tenant = crypto.randomUUID()
      yield* sql`INSERT INTO event_outbox (id, aggregatetype, aggregateid, type, payload, tenant_id)
                 VALUES (${crypto.randomUUID()}, 'rls_probe', 'a', 'Probe', '{}', ${tenant})`
      const seen = yield* sql.withTransaction(
        Effect.gen(function* () {
          yield* sql.unsafe("SET LOCAL ROLE hashinsight_app")
          const none =
            yield* sql`SELECT count(*)::int AS n FROM event_outbox WHERE aggregatetype = 'rls_probe'`
          yield* sql`SELECT set_config('app.tenant_id', ${tenant}, true)`
          const mine =
            yield* sql`SELECT count(*)::int AS n FROM event_outbox WHERE aggregatetype = 'rls_probe'`
          return [none[0]?.n, mine[0]?.n]
        }),
      )
      expect(seen).toEqual([0, 1])
    }),
  )
})
