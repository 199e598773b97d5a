/** The OS packages the stack needs, installed with apt when we are root. */
import { spawnSync } from "node:child_process"
import { pgBinDir } from "./postgres.ts"
import { isRoot, log, type Member, StackError, which } from "./processes.ts"

/**
 * Installs Debian packages with apt when we are root; otherwise fails saying what to install.
 * Nothing to do for an empty list.
 */
export const installOsPackages = (missing: ReadonlyArray<string>) => {
  if (missing.length === 0) return
  if (!isRoot || !which("apt-get")) {
    throw new StackError(
      `missing OS packages; install them with: sudo apt-get install -y ${missing.join(" ")}`,
    )
  }
  log(`installing ${missing.join(", ")} with apt-get`)
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" }
  spawnSync("apt-get", ["update", "-qq"], { stdio: "ignore", env })
  const r = spawnSync("apt-get", ["install", "-y", "-qq", "--no-install-recommends", ...missing], {
    encoding: "utf8",
    env,
  })
  if (r.status !== 0) throw new StackError(`apt-get install ${missing.join(" ")} failed:\n${r.stderr}`)
}

/** Installs what the wanted members need (or says what to install). */
export const ensurePackages = (members: ReadonlyArray<Member>) => {
  const missing: Array<string> = []
  if (members.includes("postgres") && !pgBinDir()) missing.push("postgresql")
  if (members.includes("redis") && !which("redis-server")) missing.push("redis-server")
  if (members.includes("kafka") && !which("kcat")) missing.push("kcat")
  installOsPackages(missing)
}

/**
 * A tool from a Debian package, installed when missing: the tests check `deploy/` and every
 * process's `/metrics` with `promtool` (package `prometheus`) and `amtool` (`prometheus-alertmanager`).
 */
export const ensureTool = (bin: string, debianPackage: string): string => {
  if (!which(bin)) installOsPackages([debianPackage])
  return bin
}
