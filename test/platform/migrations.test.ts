import { describe, expect } from "bun:test"
import { spawnSync } from "node:child_process"
import { cpSync, mkdtempSync, readdirSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { SqlClient } from "@effect/sql"
import { Deferred, Effect, Fiber } from "effect"
import { MigrationChecksumMismatch, migrate, migrationsDir } from "../../src/platform/migrator.ts"
import { eventually } from "../support/consumer-fixtures.ts"
import { scratchDatabase, withClient } from "../support/database.ts"
import { effectTest } from "../support/effect.ts"

const fileCount = readdirSync(migrationsDir).filter((f) => f.endsWith(".sql")).length

const psqlEnv = { ...process.env, PGOPTIONS: "-c client_min_messages=warning" }
const psqlFile = (url: string, file: string) => [url, "-v", "ON_ERROR_STOP=1", "-q", "-f", file]
const dlqDedup = join(migrationsDir, "041_dlq_dedup.sql")

/** A scratch database with the migrations before 041 applied: its DLQ may repeat a record. */
const databaseBefore041 = Effect.gen(function* () {
  const db = yield* scratchDatabase
  const before = mkdtempSync(join(tmpdir(), "migrations-"))
  for (const f of readdirSync(migrationsDir).filter((n) => n.endsWith(".sql") && n < "041"))
    cpSync(join(migrationsDir, f), join(before, f))
  yield* migrate(before).pipe(withClient(db.url))
  return db
})

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

  effectTest(
    "041 folds the open DLQ rows of each record into one (count summed, first failure, latest error, histories joined), as-is with psql -f and again through the migrator; then the unique rule holds",
    () =>
      Effect.gen(function* () {
        const db = yield* databaseBefore041
        const at = (hour: number) => new Date(Date.UTC(2026, 0, 1, hour))
        const e1 = crypto.randomUUID()
        const e2 = crypto.randomUUID()
        const rows: Record<string, Record<string, unknown>> = {
          replayed: { event_id: e1, failed_at: at(1), replay_status: "replayed", error_message: "old" },
          b: { event_id: e1, failed_at: at(3), attempts: 1, error_message: "e-b" },
          c: { event_id: e1, failed_at: at(4), attempts: 2, error_message: "e-c" },
          d: { event_id: e1, failed_at: at(5), attempts: 3, error_message: "e-d" },
          e: { event_id: e2, failed_at: at(3), error_message: "e-e" },
          f: {
            event_id: e2,
            failed_at: at(4),
            replay_status: "failed",
            replay_count: 1,
            history: JSON.stringify([{ error_message: "h-f" }]),
            error_message: "e-f",
          },
          g: {
            event_id: e2,
            failed_at: at(5),
            replay_status: "replaying",
            replay_count: 2,
            history: JSON.stringify([{ error_message: "h-g" }]),
            error_message: "e-g",
          },
          otherGroup: { event_id: e1, consumer_group: "g2", failed_at: at(3), error_message: "e-h" },
          i: { event_id: null, offset: 10, failed_at: at(3), error_message: "e-i" },
          j: { event_id: null, offset: 10, failed_at: at(4), error_message: "e-j" },
          k: { event_id: null, offset: 11, failed_at: at(3), error_message: "e-k" },
        }
        const ids = yield* Effect.gen(function* () {
          const sql = yield* SqlClient.SqlClient
          const ids: Record<string, string> = {}
          for (const [name, row] of Object.entries(rows)) {
            const [inserted] = yield* sql<{ id: string }>`INSERT INTO event_dlq ${sql.insert({
              consumer_group: "g1",
              topic: "events.t",
              partition: 0,
              offset: 1,
              error_tag: "Fatal",
              ...row,
            })} RETURNING id::text`
            ids[name] = inserted!.id
          }
          return ids
        }).pipe(withClient(db.url))

        const folded = Effect.flatMap(
          SqlClient.SqlClient,
          (sql) => sql<Record<string, unknown>>`SELECT id::text, replay_status, occurrences, failed_at,
              last_failed_at, error_message, attempts, replay_count, history
            FROM event_dlq ORDER BY event_dlq.id`,
        ).pipe(withClient(db.url))
        const entry = (name: string, fields: Record<string, unknown>) => ({
          id: ids[name],
          replay_status: "pending",
          occurrences: 1,
          attempts: 1,
          replay_count: 0,
          history: [],
          ...fields,
        })
        const expected = [
          entry("replayed", {
            replay_status: "replayed",
            failed_at: at(1),
            last_failed_at: at(1),
            error_message: "old",
          }),
          entry("b", {
            occurrences: 3,
            failed_at: at(3),
            last_failed_at: at(5),
            error_message: "e-d",
            attempts: 3,
          }),
          entry("g", {
            replay_status: "replaying",
            occurrences: 3,
            failed_at: at(3),
            last_failed_at: at(5),
            error_message: "e-g",
            replay_count: 3,
            history: [{ error_message: "h-f" }, { error_message: "h-g" }],
          }),
          entry("otherGroup", { failed_at: at(3), last_failed_at: at(3), error_message: "e-h" }),
          entry("i", { occurrences: 2, failed_at: at(3), last_failed_at: at(4), error_message: "e-j" }),
          entry("k", { failed_at: at(3), last_failed_at: at(3), error_message: "e-k" }),
        ]

        const r = spawnSync("psql", psqlFile(db.url, dlqDedup), { encoding: "utf8", env: psqlEnv })
        expect({ code: r.status, err: r.stderr.trim() }).toEqual({ code: 0, err: "" })
        expect(yield* folded).toEqual(expected)
        // The migrator, which has no record of the psql run, applies it once more: nothing changes.
        const applied = yield* migrate().pipe(withClient(db.url))
        expect(applied.applied).toContain("041_dlq_dedup.sql")
        expect(yield* folded).toEqual(expected)

        const duplicate = yield* Effect.flatMap(
          SqlClient.SqlClient,
          (
            sql,
          ) => sql`INSERT INTO event_dlq (event_id, consumer_group, topic, partition, "offset", error_tag, error_message)
            VALUES (${e1}, 'g1', 'events.t', 0, 2, 'Fatal', 'again')`,
        ).pipe(withClient(db.url), Effect.flip)
        expect(String((duplicate.cause as { code?: string }).code)).toBe("23505")
      }),
  )

  effectTest(
    "041 folds a DLQ of 50,000 rows for 20,000 records within 30 s (its table locked all the while)",
    () =>
      Effect.gen(function* () {
        const db = yield* databaseBefore041
        yield* withClient(db.url)(
          Effect.flatMap(
            SqlClient.SqlClient,
            (sql) => sql`INSERT INTO event_dlq (event_id, consumer_group, topic, partition, "offset", value,
                error_tag, error_message, replay_status, history, failed_at)
              SELECT e.id, 'intel-group', 'events.miner', n % 4, n, repeat('x', 200), 'SqlError', 'down ' || n,
                CASE WHEN n % 7 = 0 THEN 'failed' ELSE 'pending' END,
                CASE WHEN n % 7 = 0 THEN jsonb_build_array(jsonb_build_object('error_message', n)) ELSE '[]' END,
                now() - make_interval(secs => n)
              FROM generate_series(1, 50000) n
              JOIN (SELECT k, gen_random_uuid() AS id FROM generate_series(0, 19999) k) e ON e.k = n % 20000`,
          ),
        )
        const started = Date.now()
        const r = spawnSync("psql", psqlFile(db.url, dlqDedup), {
          encoding: "utf8",
          env: psqlEnv,
          timeout: 30_000,
        })
        expect({ code: r.status, err: r.stderr.trim() }).toEqual({ code: 0, err: "" })
        expect(Date.now() - started).toBeLessThan(30_000)
        const [folded] = yield* withClient(db.url)(
          Effect.flatMap(
            SqlClient.SqlClient,
            (sql) => sql<{ entries: number; occurrences: number; histories: number }>`
              SELECT count(*)::int AS entries, sum(occurrences)::int AS occurrences,
                sum(jsonb_array_length(history))::int AS histories
              FROM event_dlq`,
          ),
        )
        expect(folded).toEqual({ entries: 20_000, occurrences: 50_000, histories: 7142 })
      }),
    { timeout: 120_000 },
  )

  effectTest(
    "041 under psql -f while a member still on the old code dead-letters: its row gets a last_failed_at too, and the file ends with it NOT NULL",
    () =>
      Effect.gen(function* () {
        const db = yield* databaseBefore041
        yield* Effect.gen(function* () {
          const sql = yield* SqlClient.SqlClient
          // Holds the migration inside its first UPDATE of event_dlq while the test holds the lock.
          yield* sql`CREATE FUNCTION hold_041() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN PERFORM pg_advisory_xact_lock(4141); RETURN NULL; END $$`
          yield* sql`CREATE TRIGGER hold_041 BEFORE UPDATE ON event_dlq
            FOR EACH STATEMENT EXECUTE FUNCTION hold_041()`
          const locked = yield* Deferred.make<void>()
          const release = yield* Deferred.make<void>()
          const holder = yield* Effect.fork(
            sql.withTransaction(
              Effect.gen(function* () {
                yield* sql`SELECT pg_advisory_xact_lock(4141)`
                yield* Deferred.succeed(locked, undefined)
                yield* Deferred.await(release)
              }),
            ),
          )
          yield* Deferred.await(locked)
          const psql = Bun.spawn(["psql", ...psqlFile(db.url, dlqDedup)], { env: psqlEnv, stderr: "pipe" })
          const waitingOn = (event: string) =>
            Effect.map(
              sql<{ n: number }>`SELECT count(*)::int AS n FROM pg_stat_activity
                WHERE datname = ${db.name} AND wait_event_type = 'Lock' AND wait_event = ${event}`,
              ([row]) => row!.n > 0,
            )
          yield* eventually(waitingOn("advisory"))
          // What writeDeadLetter wrote before 041: no occurrences, no last_failed_at.
          const oldWrite = yield* Effect.fork(
            sql`INSERT INTO event_dlq (event_id, consumer_group, topic, partition, "offset", error_tag, error_message)
              VALUES (${crypto.randomUUID()}, 'g1', 'events.t', 0, 7, 'Fatal', 'during the migration')`,
          )
          yield* eventually(
            Effect.zipWith(
              waitingOn("relation"),
              Fiber.poll(oldWrite),
              (waits, done) => waits || done._tag === "Some",
            ),
          )
          yield* Deferred.succeed(release, undefined)
          yield* Fiber.join(holder)
          const code = yield* Effect.promise(() => psql.exited)
          const err = yield* Effect.promise(() => new Response(psql.stderr).text())
          yield* Fiber.join(oldWrite)
          expect({ code, err: err.trim() }).toEqual({ code: 0, err: "" })
          const [column] = yield* sql<{ notNull: boolean; missing: number; occurrences: number }>`
            SELECT (SELECT attnotnull FROM pg_attribute
                    WHERE attrelid = 'event_dlq'::regclass AND attname = 'last_failed_at') AS "notNull",
              (SELECT count(*)::int FROM event_dlq WHERE last_failed_at IS NULL) AS missing,
              (SELECT sum(occurrences)::int FROM event_dlq) AS occurrences`
          expect(column).toEqual({ notNull: true, missing: 0, occurrences: 1 })
        }).pipe(withClient(db.url))
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
