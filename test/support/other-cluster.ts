/**
 * A second PostgreSQL cluster beside the suite's: its own xid counter and system identifier, as a
 * database restored from a dump elsewhere would find, or settings the suite's cluster lacks
 * (`max_prepared_transactions`). A throwaway stack folder with only PostgreSQL started (Redis and
 * Kafka are taken from the environment), stopped and removed with the scope.
 */
import { spawnSync } from "node:child_process"
import { existsSync, realpathSync, rmSync } from "node:fs"
import { join } from "node:path"
import { Effect } from "effect"
import { projectRoot } from "../../src/platform/project-root.ts"
import { uniqueId } from "./ids.ts"

const stack = (dir: string, command: "up" | "down") => {
  const env: Record<string, string> = {}
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined) env[k] = v
  delete env.DATABASE_URL
  env.HASHINSIGHT_STACK_DIR = dir
  return spawnSync(process.execPath, ["src/bin/stack.ts", command], {
    cwd: projectRoot,
    env,
    encoding: "utf8",
  })
}

/** Sets server settings that need a restart (ALTER SYSTEM), then restarts the cluster. */
const restartWith = (dir: string, url: string, settings: Record<string, string>) => {
  for (const [name, value] of Object.entries(settings)) {
    const set = spawnSync("psql", ["-qc", `ALTER SYSTEM SET ${name} = '${value}'`, url], { encoding: "utf8" })
    if (set.status !== 0) throw new Error(`ALTER SYSTEM SET ${name} failed: ${set.stderr}`)
  }
  const bin = spawnSync("pg_config", ["--bindir"], { encoding: "utf8" }).stdout.trim()
  const pgDir = realpathSync(join(dir, "postgres"))
  // With a log file: a server writing to our pipes would keep spawnSync waiting for it forever.
  const ctl = [
    join(bin, "pg_ctl"),
    "-D",
    join(pgDir, "data"),
    "-l",
    join(pgDir, "postgres.log"),
    "restart",
    "-m",
    "fast",
    "-w",
  ]
  const [file, ...args] = process.getuid?.() === 0 ? ["runuser", "-u", "postgres", "--", ...ctl] : ctl
  const r = spawnSync(file!, args, { encoding: "utf8" })
  if (r.status !== 0) throw new Error(`restarting the second cluster failed: ${r.stdout}${r.stderr}`)
}

export const otherCluster = (settings: Record<string, string> = {}) =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const dir = join(projectRoot, ".stack", uniqueId("other-cluster"))
      const up = stack(dir, "up")
      const url = /^DATABASE_URL=(.+)$/m.exec(up.stdout)?.[1]
      if (up.status !== 0 || !url) throw new Error(`second cluster did not start:\n${up.stdout}${up.stderr}`)
      if (Object.keys(settings).length > 0) restartWith(dir, url, settings)
      return { dir, url }
    }),
    ({ dir }) =>
      Effect.sync(() => {
        stack(dir, "down")
        const data = join(dir, "postgres")
        if (existsSync(data)) rmSync(realpathSync(data), { recursive: true, force: true })
        rmSync(dir, { recursive: true, force: true })
      }),
  )

/**
 * `pg_dump` of one database restored into another, the way an operator moves a database to a new
 * cluster. The roles the migrations grant to are cluster-wide, so they are created first.
 */
export const restoreDump = (from: string, to: string) =>
  Effect.sync(() => {
    const roles = spawnSync(
      "psql",
      [
        "-v",
        "ON_ERROR_STOP=1",
        "-qc",
        "CREATE ROLE hashinsight_app NOLOGIN; CREATE ROLE hashinsight_ops NOLOGIN BYPASSRLS;",
        to,
      ],
      { encoding: "utf8" },
    )
    if (roles.status !== 0) throw new Error(`creating roles failed: ${roles.stderr}`)
    const r = spawnSync(
      "bash",
      ["-o", "pipefail", "-c", 'pg_dump --no-owner "$FROM" | psql -v ON_ERROR_STOP=1 -q "$TO"'],
      { encoding: "utf8", env: { ...process.env, FROM: from, TO: to } },
    )
    if (r.status !== 0) throw new Error(`dump and restore failed: ${r.stderr}`)
  })
