/**
 * A second PostgreSQL cluster beside the suite's: its own xid counter and system identifier, as a
 * database restored from a dump elsewhere would find. A throwaway stack folder with only
 * PostgreSQL started (Redis and Kafka are taken from the environment), stopped and removed with
 * the scope.
 */
import { spawnSync } from "node:child_process"
import { existsSync, realpathSync, rmSync } from "node:fs"
import { join } from "node:path"
import { Effect } from "effect"
import { projectRoot } from "../../src/platform/stack.ts"
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

export const otherCluster = Effect.acquireRelease(
  Effect.sync(() => {
    const dir = join(projectRoot, ".stack", uniqueId("other-cluster"))
    const up = stack(dir, "up")
    const url = /^DATABASE_URL=(.+)$/m.exec(up.stdout)?.[1]
    if (up.status !== 0 || !url) throw new Error(`second cluster did not start:\n${up.stdout}${up.stderr}`)
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
