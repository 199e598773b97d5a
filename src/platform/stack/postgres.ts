/**
 * The stack's PostgreSQL: a private cluster with logical WAL (the relay's slot), fast and unsafe on
 * purpose (fsync off), on a port of its own, with the `hashinsight` database created.
 */

import { createHash } from "node:crypto"
import {
  chownSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  realpathSync,
  symlinkSync,
} from "node:fs"
import { join } from "node:path"
import { pickPort } from "./ports.ts"
import { isRoot, run, runningFrom, StackError, type StackMember, stackDir } from "./processes.ts"

const databaseName = "hashinsight"

export const pgBinDir = (): string | undefined => {
  const base = "/usr/lib/postgresql"
  if (!existsSync(base)) return undefined
  const versions = readdirSync(base)
    .filter((v) => existsSync(join(base, v, "bin", "postgres")))
    .sort((a, b) => Number(b) - Number(a))
  return versions[0] ? join(base, versions[0], "bin") : undefined
}

/**
 * PostgreSQL refuses to run as root, so as root the server runs as `postgres`, which must reach its
 * data dir. When the project lives where `postgres` cannot traverse (e.g. a 0700 temp folder), the
 * data goes to /var/tmp instead and `.stack/postgres` links to it.
 */
const pgDir = (): string => {
  const local = join(stackDir(), "postgres")
  if (existsSync(local)) return realpathSync(local)
  mkdirSync(stackDir(), { recursive: true })
  if (!isRoot || run("test", ["-x", stackDir()], { asPostgres: true }).ok) return local
  const external = join(
    "/var/tmp",
    `hashinsight-stack-${createHash("sha1").update(stackDir()).digest("hex").slice(0, 12)}`,
  )
  mkdirSync(external, { recursive: true })
  symlinkSync(external, local)
  return external
}
const pgData = () => join(pgDir(), "data")
const pgPidFile = () => join(pgData(), "postmaster.pid")

const postgresRunning = () => runningFrom(pgPidFile())

const postgresUrl = () => {
  const port = Number(readFileSync(pgPidFile(), "utf8").split("\n")[3])
  return `postgres://postgres@127.0.0.1:${port}/${databaseName}`
}

const startPostgres = async (): Promise<void> => {
  const bin = pgBinDir()
  if (!bin) throw new StackError("PostgreSQL server binaries not found under /usr/lib/postgresql")
  mkdirSync(pgDir(), { recursive: true })
  if (isRoot) {
    const ids = run("id", ["-u", "postgres"])
    const gid = run("id", ["-g", "postgres"])
    chownSync(pgDir(), Number(ids.out), Number(gid.out))
  }
  if (!existsSync(join(pgData(), "PG_VERSION"))) {
    const init = run(
      join(bin, "initdb"),
      ["-D", pgData(), "--auth=trust", "--no-sync", "-U", "postgres", "-E", "UTF8", "--locale=C"],
      { asPostgres: true },
    )
    if (!init.ok) throw new StackError(`initdb failed:\n${init.out}`)
  }
  const port = await pickPort("postgres")
  const options = [
    "-c wal_level=logical",
    "-c max_replication_slots=20",
    "-c max_wal_senders=20",
    "-c max_connections=300",
    "-c fsync=off",
    "-c full_page_writes=off",
    `-c port=${port}`,
    "-c listen_addresses=127.0.0.1",
    `-c unix_socket_directories=${pgDir()}`,
    "-c wal_sender_timeout=30s",
  ].join(" ")
  const start = run(
    join(bin, "pg_ctl"),
    ["-D", pgData(), "-l", join(pgDir(), "postgres.log"), "-w", "-t", "30", "-o", options, "start"],
    { asPostgres: true },
  )
  if (!start.ok)
    throw new StackError(`PostgreSQL did not start (see ${join(pgDir(), "postgres.log")}):\n${start.out}`)
  const exists = run("psql", [
    "-h",
    "127.0.0.1",
    "-p",
    String(port),
    "-U",
    "postgres",
    "-tAc",
    `SELECT 1 FROM pg_database WHERE datname = '${databaseName}'`,
  ])
  if (exists.out !== "1") {
    const created = run("psql", [
      "-h",
      "127.0.0.1",
      "-p",
      String(port),
      "-U",
      "postgres",
      "-c",
      `CREATE DATABASE ${databaseName}`,
    ])
    if (!created.ok) throw new StackError(`creating database ${databaseName} failed:\n${created.out}`)
  }
}

const stopPostgres = async () => {
  const bin = pgBinDir()
  if (!bin || !postgresRunning()) return
  run(join(bin, "pg_ctl"), ["-D", pgData(), "-m", "fast", "-w", "stop"], { asPostgres: true })
}

export const postgres: StackMember = {
  running: postgresRunning,
  start: startPostgres,
  stop: stopPostgres,
  env: postgresUrl,
}
