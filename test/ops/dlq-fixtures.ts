/**
 * Helpers for the DLQ CLI tests: a migrated scratch database (so counts are exact), DLQ and inbox
 * rows inserted as the consumer runtime would write them, and the CLI run as a subprocess.
 */
import { SqlClient } from "@effect/sql"
import { Effect } from "effect"
import { migrate } from "../../src/platform/migrator.ts"
import { projectRoot } from "../../src/platform/project-root.ts"
import { scratchDatabase, withClient } from "../support/database.ts"

/** A scratch database with every migration applied; dropped with the scope. */
export const migratedScratch = Effect.gen(function* () {
  const db = yield* scratchDatabase
  yield* migrate().pipe(withClient(db.url))
  return db
})

export interface DlqRow {
  readonly group: string
  readonly topic: string
  readonly key?: string | null
  readonly value?: string | null
  readonly headers?: Record<string, string>
  readonly eventId?: string
  readonly eventType?: string
  readonly errorTag?: string
  readonly errorMessage?: string
  readonly attempts?: number
  readonly occurrences?: number
  readonly partition?: number
  readonly offset?: number
  readonly hoursAgo?: number
  readonly replayStatus?: "pending" | "replaying" | "replayed" | "failed"
}

export const testTenant = "00000000-0000-4000-8000-0000000d1e00"

/** Inserts rows the way the runtime's `writeDeadLetter` does; returns their ids in order. */
export const insertDlq = (rows: ReadonlyArray<DlqRow>) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const inserted = yield* sql<{ id: string }>`INSERT INTO event_dlq ${sql.insert(
      rows.map((r, i) => {
        const eventId = r.eventId ?? crypto.randomUUID()
        return {
          event_id: eventId,
          consumer_group: r.group,
          topic: r.topic,
          partition: r.partition ?? 0,
          offset: r.offset ?? i,
          key: r.key === undefined ? `agg-${i}` : r.key,
          value: r.value === undefined ? JSON.stringify({ n: i }) : r.value,
          headers: JSON.stringify(
            r.headers ?? { id: eventId, eventType: r.eventType ?? "Work", tenantId: testTenant },
          ),
          event_type: r.eventType ?? "Work",
          error_tag: r.errorTag ?? "HandlerFailed",
          error_message: r.errorMessage ?? "boom",
          attempts: r.attempts ?? 1,
          occurrences: r.occurrences ?? 1,
          tenant_id: testTenant,
          failed_at: new Date(Date.now() - (r.hoursAgo ?? 0) * 3_600_000),
          last_failed_at: new Date(Date.now() - (r.hoursAgo ?? 0) * 3_600_000),
          replay_status: r.replayStatus ?? "pending",
        }
      }),
    )} RETURNING id`
    return inserted.map((r) => Number(r.id))
  })

/** `n` processed events of a group, as inbox rows processed `hoursAgo` hours ago. */
export const insertInbox = (group: string, n: number, hoursAgo = 0) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    if (n === 0) return
    yield* sql`INSERT INTO event_inbox ${sql.insert(
      Array.from({ length: n }, (_, i) => ({
        consumer_group: group,
        event_id: crypto.randomUUID(),
        tenant_id: testTenant,
        event_type: "Work",
        topic: "events.test",
        partition: 0,
        offset: i,
        processed_at: new Date(Date.now() - hoursAgo * 3_600_000),
      })),
    )}`
  })

export interface CliRun {
  readonly code: number
  readonly stdout: string
  readonly stderr: string
  readonly ms: number
}

/** `bun src/bin/dlq.ts ...args` with the suite's env, overridden by `env`. */
export const runCli = async (
  args: ReadonlyArray<string>,
  env: Record<string, string> = {},
): Promise<CliRun> => {
  const started = performance.now()
  const proc = Bun.spawn([process.execPath, "src/bin/dlq.ts", ...args], {
    cwd: projectRoot,
    env: { ...process.env, NODE_NO_WARNINGS: "1", ...env },
    stdout: "pipe",
    stderr: "pipe",
  })
  const [stdout, stderr, code] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ])
  return { code, stdout, stderr, ms: performance.now() - started }
}

export const cli = (args: ReadonlyArray<string>, env: Record<string, string> = {}) =>
  Effect.promise(() => runCli(args, env))

/** Runs the CLI with `--json` and parses stdout, failing loudly with stderr when it did not exit 0. */
export const cliJson = <A>(args: ReadonlyArray<string>, env: Record<string, string> = {}) =>
  Effect.flatMap(cli([...args, "--json"], env), (r) =>
    r.code === 0
      ? Effect.succeed(JSON.parse(r.stdout) as A)
      : Effect.die(new Error(`dlq ${args.join(" ")} exited ${r.code}: ${r.stderr}`)),
  )
