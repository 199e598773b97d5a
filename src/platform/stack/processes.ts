/**
 * What every member of the embedded stack shares: the state folder, commands run (as `postgres`
 * when we are root: PostgreSQL refuses to run as root), pid files and stopping by pid.
 */
import { spawnSync } from "node:child_process"
import { existsSync, readFileSync } from "node:fs"
import { join } from "node:path"
import { projectRoot } from "../project-root.ts"

/** `HASHINSIGHT_STACK_DIR` moves the state folder (tests run a second, throwaway stack there). */
export const stackDir = () => process.env.HASHINSIGHT_STACK_DIR ?? join(projectRoot, ".stack")

export class StackError extends Error {
  override readonly name = "StackError"
}

export const isRoot = process.getuid?.() === 0
export const log = (line: string) => process.stderr.write(`[stack] ${line}\n`)

export const run = (
  cmd: string,
  args: ReadonlyArray<string>,
  opts: { asPostgres?: boolean; cwd?: string } = {},
) => {
  const [file, argv] =
    opts.asPostgres && isRoot ? ["runuser", ["-u", "postgres", "--", cmd, ...args]] : [cmd, args]
  const r = spawnSync(file, argv, { cwd: opts.cwd ?? "/", encoding: "utf8" })
  return { ok: r.status === 0, out: `${r.stdout ?? ""}${r.stderr ?? ""}`.trim() }
}

export const which = (bin: string) => run("sh", ["-c", `command -v ${bin}`]).ok

/** Alive and not a zombie (a killed daemon may wait unreaped when PID 1 does not reap). */
export const pidAlive = (pid: number | undefined): pid is number => {
  if (!pid) return false
  try {
    process.kill(pid, 0)
  } catch {
    return false
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8")
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z"
  } catch {
    return true
  }
}

export const readPid = (file: string): number | undefined => {
  if (!existsSync(file)) return undefined
  const pid = Number.parseInt(readFileSync(file, "utf8").split("\n")[0] ?? "", 10)
  return Number.isFinite(pid) ? pid : undefined
}

/** The pid in `file` when that process is alive. */
export const runningFrom = (file: string): number | undefined => {
  const pid = readPid(file)
  return pidAlive(pid) ? pid : undefined
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

export const stopPid = async (pid: number | undefined) => {
  if (!pidAlive(pid)) return
  process.kill(pid, "SIGTERM")
  for (let i = 0; i < 100 && pidAlive(pid); i++) await sleep(30)
  if (pidAlive(pid)) process.kill(pid, "SIGKILL")
}

export type Member = "postgres" | "redis" | "kafka"

/** One member of the stack, as `up`, `down` and `currentEnv` drive it. */
export interface StackMember {
  readonly running: () => number | undefined
  readonly start: () => Promise<void>
  readonly stop: () => Promise<void>
  /** The value of its env var (a URL, a broker list) while it runs. */
  readonly env: () => string
}
