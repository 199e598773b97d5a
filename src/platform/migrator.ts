/**
 * Applies `migrations/NNN_name.sql` in order, each once, each in its own transaction, recorded in
 * `schema_migrations` with a SHA-256 checksum. A changed checksum of an applied file stops the run
 * before anything is applied. Concurrent runs serialise on an advisory lock.
 */
import { createHash } from "node:crypto"
import { readdirSync, readFileSync } from "node:fs"
import { join } from "node:path"
import { SqlClient } from "@effect/sql"
import { Effect, Schema } from "effect"
import { projectRoot } from "./project-root.ts"

export const migrationsDir = join(projectRoot, "migrations")

export class MigrationChecksumMismatch extends Schema.TaggedError<MigrationChecksumMismatch>()(
  "MigrationChecksumMismatch",
  { file: Schema.String, applied: Schema.String, current: Schema.String },
) {
  override get message() {
    return `migration ${this.file} was changed after it was applied (checksum ${this.applied.slice(0, 12)}… → ${this.current.slice(0, 12)}…); add a new migration instead of editing an applied one`
  }
}

export class MigrationFileError extends Schema.TaggedError<MigrationFileError>()("MigrationFileError", {
  file: Schema.String,
  reason: Schema.String,
}) {
  override get message() {
    return `migration ${this.file}: ${this.reason}`
  }
}

export type MigrationFile = {
  readonly version: number
  readonly name: string
  readonly sql: string
  readonly checksum: string
}

export const readMigrations = (
  dir = migrationsDir,
): Effect.Effect<ReadonlyArray<MigrationFile>, MigrationFileError> =>
  Effect.forEach(
    readdirSync(dir)
      .filter((f) => f.endsWith(".sql"))
      .sort(),
    (name) => {
      const m = /^(\d{3})_[a-z0-9_]+\.sql$/.exec(name)
      if (!m)
        return Effect.fail(new MigrationFileError({ file: name, reason: "name must look like NNN_name.sql" }))
      const sql = readFileSync(join(dir, name), "utf8")
      return Effect.succeed({
        version: Number(m[1]),
        name,
        sql,
        checksum: createHash("sha256").update(sql).digest("hex"),
      })
    },
  )

const lockKey = 0x68617368 // "hash": serialises concurrent migrators

export type MigrateResult = { readonly applied: ReadonlyArray<string>; readonly skipped: number }

export const migrate = (dir = migrationsDir) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const files = yield* readMigrations(dir)
    yield* sql`CREATE TABLE IF NOT EXISTS schema_migrations (
      version integer PRIMARY KEY,
      name text NOT NULL,
      checksum text NOT NULL,
      applied_at timestamptz NOT NULL DEFAULT now()
    )`
    const applied = new Map(
      (yield* sql<{
        version: number
        name: string
        checksum: string
      }>`SELECT version, name, checksum FROM schema_migrations`).map((r) => [r.version, r]),
    )
    for (const f of files) {
      const a = applied.get(f.version)
      if (a && a.checksum !== f.checksum) {
        return yield* new MigrationChecksumMismatch({
          file: f.name,
          applied: a.checksum,
          current: f.checksum,
        })
      }
    }
    const done: Array<string> = []
    for (const f of files) {
      if (applied.has(f.version)) continue
      const ran = yield* sql.withTransaction(
        Effect.gen(function* () {
          yield* sql`SELECT pg_advisory_xact_lock(${lockKey})`
          const again = yield* sql`SELECT 1 FROM schema_migrations WHERE version = ${f.version}`
          if (again.length > 0) return false
          yield* sql.unsafe(f.sql)
          yield* sql`INSERT INTO schema_migrations (version, name, checksum) VALUES (${f.version}, ${f.name}, ${f.checksum})`
          return true
        }),
      )
      if (ran) {
        done.push(f.name)
        yield* Effect.logInfo(`applied ${f.name}`)
      }
    }
    return { applied: done, skipped: files.length - done.length } satisfies MigrateResult
  }).pipe(Effect.withSpan("migrate"))
