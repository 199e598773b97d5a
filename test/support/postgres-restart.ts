/**
 * Restarts the embedded PostgreSQL server the suite runs on (`pg_ctl restart`, STACK.md), for tests
 * of what clients see across a restart. Only the embedded stack's server can be restarted: with
 * DATABASE_URL pointing elsewhere, `embeddedPostgres` is undefined and such tests are skipped.
 *
 * A restart takes the whole server down, every test database with it: bun runs test files one at a
 * time, and the restart returns only once the server accepts connections again (`-w`).
 */
import { existsSync, readFileSync } from "node:fs"
import { join } from "node:path"
import { Effect } from "effect"
import { stackDir } from "../../src/platform/stack/index.ts"

const pgDir = join(stackDir(), "postgres")
const pgData = join(pgDir, "data")

/** The data directory of the embedded server, when DATABASE_URL names it. */
export const embeddedPostgres = ((): string | undefined => {
  const pidFile = join(pgData, "postmaster.pid")
  if (!existsSync(pidFile) || !process.env.DATABASE_URL) return undefined
  const port = readFileSync(pidFile, "utf8").split("\n")[3]?.trim()
  return port === new URL(process.env.DATABASE_URL).port ? pgData : undefined
})()

const asPostgres = (argv: ReadonlyArray<string>) =>
  process.getuid?.() === 0 ? ["runuser", "-u", "postgres", "--", ...argv] : [...argv]

/**
 * `pg_ctl restart -m <mode> -w`: `fast` disconnects every session and shuts down cleanly,
 * `immediate` kills the server processes, as a crash does (crash recovery on start).
 */
export const restartPostgres = (mode: "fast" | "immediate") =>
  Effect.promise(async () => {
    if (embeddedPostgres === undefined) throw new Error("not on the embedded PostgreSQL server")
    const proc = Bun.spawn(
      asPostgres([
        "pg_ctl",
        "-D",
        pgData,
        "-l",
        join(pgDir, "postgres.log"),
        "-m",
        mode,
        "-w",
        "-t",
        "60",
        "restart",
      ]),
      { stdout: "pipe", stderr: "pipe" },
    )
    const [code, out, err] = await Promise.all([
      proc.exited,
      new Response(proc.stdout).text(),
      new Response(proc.stderr).text(),
    ])
    if (code !== 0) throw new Error(`pg_ctl restart -m ${mode} failed (${code}):\n${out}${err}`)
  })
