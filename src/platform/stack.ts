/**
 * The embedded local stack: a private PostgreSQL cluster with logical WAL, a private Redis and an
 * in-memory Kafka cluster (librdkafka's mock, hosted by Debian's `kcat`). State, pid files and logs
 * live under `.stack/`. A service whose env var is already set is used as-is and never started.
 *
 * This runs before any Effect layer exists (it produces the env the layers read), so it is plain,
 * synchronous process management.
 */
import { spawn, spawnSync } from "node:child_process"
import { createHash } from "node:crypto"
import {
  chownSync,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  realpathSync,
  symlinkSync,
  writeFileSync,
} from "node:fs"
import { createServer } from "node:net"
import { join, resolve } from "node:path"

export const projectRoot = resolve(import.meta.dir, "../..")
/** `HASHINSIGHT_STACK_DIR` moves the state folder (tests run a second, throwaway stack there). */
export const stackDir = () => process.env.HASHINSIGHT_STACK_DIR ?? join(projectRoot, ".stack")
export const databaseName = "hashinsight"

export type StackEnv = {
  DATABASE_URL: string
  REDIS_URL: string
  KAFKA_BROKERS: string
}
export const stackEnvKeys = ["DATABASE_URL", "REDIS_URL", "KAFKA_BROKERS"] as const
export type Member = "postgres" | "redis" | "kafka"
const memberOf: Record<keyof StackEnv, Member> = {
  DATABASE_URL: "postgres",
  REDIS_URL: "redis",
  KAFKA_BROKERS: "kafka",
}

export class StackError extends Error {
  override readonly name = "StackError"
}

const isRoot = process.getuid?.() === 0
const log = (line: string) => process.stderr.write(`[stack] ${line}\n`)

const run = (cmd: string, args: ReadonlyArray<string>, opts: { asPostgres?: boolean; cwd?: string } = {}) => {
  const [file, argv] =
    opts.asPostgres && isRoot ? ["runuser", ["-u", "postgres", "--", cmd, ...args]] : [cmd, args]
  const r = spawnSync(file, argv, { cwd: opts.cwd ?? "/", encoding: "utf8" })
  return { ok: r.status === 0, out: `${r.stdout ?? ""}${r.stderr ?? ""}`.trim() }
}

const which = (bin: string) => run("sh", ["-c", `command -v ${bin}`]).ok

const pgBinDir = (): string | undefined => {
  const base = "/usr/lib/postgresql"
  if (!existsSync(base)) return undefined
  const versions = readdirSync(base)
    .filter((v) => existsSync(join(base, v, "bin", "postgres")))
    .sort((a, b) => Number(b) - Number(a))
  return versions[0] ? join(base, versions[0], "bin") : undefined
}

/** Installs what the wanted members need with apt when we are root; otherwise says what to install. */
const ensurePackages = (members: ReadonlyArray<Member>) => {
  const missing: Array<string> = []
  if (members.includes("postgres") && !pgBinDir()) missing.push("postgresql")
  if (members.includes("redis") && !which("redis-server")) missing.push("redis-server")
  if (members.includes("kafka") && !which("kcat")) missing.push("kcat")
  installOsPackages(missing)
}

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

/**
 * A tool from a Debian package, installed when missing: the tests check `deploy/` and every
 * process's `/metrics` with `promtool` (package `prometheus`) and `amtool` (`prometheus-alertmanager`).
 */
export const ensureTool = (bin: string, debianPackage: string): string => {
  if (!which(bin)) installOsPackages([debianPackage])
  return bin
}

export const freePort = (): Promise<number> =>
  new Promise((ok, fail) => {
    const srv = createServer()
    srv.once("error", fail)
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address()
      const port = typeof addr === "object" && addr ? addr.port : 0
      srv.close(() => ok(port))
    })
  })

const portIsFree = (port: number): Promise<boolean> =>
  new Promise((ok) => {
    const srv = createServer()
    srv.once("error", () => ok(false))
    srv.listen(port, "127.0.0.1", () => srv.close(() => ok(true)))
  })

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

const readPid = (file: string): number | undefined => {
  if (!existsSync(file)) return undefined
  const pid = Number.parseInt(readFileSync(file, "utf8").split("\n")[0] ?? "", 10)
  return Number.isFinite(pid) ? pid : undefined
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** Ports survive restarts so a running client's env stays valid after a member is revived. */
const portsFile = () => join(stackDir(), "ports.json")
const loadPorts = (): Partial<Record<Member, number>> =>
  existsSync(portsFile()) ? JSON.parse(readFileSync(portsFile(), "utf8")) : {}
const pickPort = async (member: Member): Promise<number> => {
  const ports = loadPorts()
  const known = ports[member]
  if (known && (await portIsFree(known))) return known
  const port = await freePort()
  writeFileSync(portsFile(), JSON.stringify({ ...loadPorts(), [member]: port }))
  return port
}

// ---------------------------------------------------------------- PostgreSQL

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

const postgresRunning = (): number | undefined => {
  const pid = readPid(pgPidFile())
  return pidAlive(pid) ? pid : undefined
}

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

const stopPostgres = () => {
  const bin = pgBinDir()
  if (!bin || !postgresRunning()) return
  run(join(bin, "pg_ctl"), ["-D", pgData(), "-m", "fast", "-w", "stop"], { asPostgres: true })
}

// ---------------------------------------------------------------- Redis

const redisDir = () => join(stackDir(), "redis")
const redisPidFile = () => join(redisDir(), "redis.pid")
const redisPortFile = () => join(redisDir(), "port")

const redisRunning = (): number | undefined => {
  const pid = readPid(redisPidFile())
  return pidAlive(pid) ? pid : undefined
}

const startRedis = async (): Promise<void> => {
  mkdirSync(redisDir(), { recursive: true })
  const port = await pickPort("redis")
  const r = run("redis-server", [
    "--port",
    String(port),
    "--bind",
    "127.0.0.1",
    "--save",
    "",
    "--appendonly",
    "no",
    "--daemonize",
    "yes",
    "--dir",
    redisDir(),
    "--pidfile",
    redisPidFile(),
    "--logfile",
    join(redisDir(), "redis.log"),
  ])
  if (!r.ok) throw new StackError(`redis-server did not start:\n${r.out}`)
  writeFileSync(redisPortFile(), String(port))
  for (let i = 0; i < 100 && !redisRunning(); i++) await sleep(20)
  if (!redisRunning())
    throw new StackError(`redis-server did not start (see ${join(redisDir(), "redis.log")})`)
}

// ---------------------------------------------------------------- Kafka (librdkafka mock cluster)

const kafkaDir = () => join(stackDir(), "kafka")
const kafkaPidFile = () => join(kafkaDir(), "kcat.pid")
const kafkaLog = () => join(kafkaDir(), "kcat.log")

const kafkaRunning = (): number | undefined => {
  const pid = readPid(kafkaPidFile())
  return pidAlive(pid) ? pid : undefined
}

/** Reads the bootstrap list librdkafka logs when its mock cluster replaces `bootstrap.servers`. */
export const parseMockBootstrap = (logText: string): string | undefined =>
  /replaced with (\S+)/.exec(logText)?.[1]

/**
 * Spawns a librdkafka mock cluster of 3 brokers (hosted by kcat) that logs to `logPath`, and
 * resolves with its pid and bootstrap list once it listens. `detached` outlives the caller.
 */
export const spawnKafkaMock = async (
  logPath: string,
  options: { readonly detached: boolean },
): Promise<{ readonly pid: number; readonly brokers: string }> => {
  const err = openSync(logPath, "w")
  const child = spawn(
    "kcat",
    ["-b", "dummy:1", "-C", "-t", "__keepalive", "-o", "end", "-q", "-X", "test.mock.num.brokers=3"],
    { detached: options.detached, stdio: ["ignore", "ignore", err] },
  )
  if (options.detached) child.unref()
  for (let i = 0; i < 250; i++) {
    const brokers = parseMockBootstrap(readFileSync(logPath, "utf8"))
    if (brokers && child.pid !== undefined) return { pid: child.pid, brokers }
    if (!pidAlive(child.pid)) break
    await sleep(20)
  }
  if (pidAlive(child.pid)) child.kill("SIGKILL")
  throw new StackError(`the Kafka mock cluster did not start (see ${logPath})`)
}

const startKafka = async (): Promise<void> => {
  mkdirSync(kafkaDir(), { recursive: true })
  const { pid } = await spawnKafkaMock(kafkaLog(), { detached: true })
  writeFileSync(kafkaPidFile(), String(pid))
}

/** The embedded mock's bootstrap list when it is running (benchmarks compare it with KAFKA_BROKERS). */
export const embeddedKafkaBrokers = (): string | undefined =>
  kafkaRunning() ? parseMockBootstrap(readFileSync(kafkaLog(), "utf8")) : undefined

// ---------------------------------------------------------------- the stack

const stopPid = async (pid: number | undefined) => {
  if (!pidAlive(pid)) return
  process.kill(pid, "SIGTERM")
  for (let i = 0; i < 100 && pidAlive(pid); i++) await sleep(30)
  if (pidAlive(pid)) process.kill(pid, "SIGKILL")
}

const envOf = (member: Member): string => {
  switch (member) {
    case "postgres":
      return postgresUrl()
    case "redis":
      return `redis://127.0.0.1:${readFileSync(redisPortFile(), "utf8").trim()}`
    case "kafka":
      return parseMockBootstrap(readFileSync(kafkaLog(), "utf8")) ?? ""
  }
}

const running: Record<Member, () => number | undefined> = {
  postgres: postgresRunning,
  redis: redisRunning,
  kafka: kafkaRunning,
}
const starters: Record<Member, () => Promise<void>> = {
  postgres: startPostgres,
  redis: startRedis,
  kafka: startKafka,
}

/** Members that the environment does not already point at an external service. */
const embeddedMembers = (env: NodeJS.ProcessEnv): Array<Member> =>
  stackEnvKeys.filter((k) => !env[k]).map((k) => memberOf[k])

/**
 * Starts every embedded member that is not running (so a crashed member comes back), and returns
 * the full env: external values where set, embedded ones otherwise. Calling it twice is a no-op.
 */
export const up = async (env: NodeJS.ProcessEnv = process.env): Promise<StackEnv> => {
  const members = embeddedMembers(env)
  mkdirSync(stackDir(), { recursive: true })
  ensurePackages(members)
  for (const member of members) {
    if (running[member]()) continue
    const started = Date.now()
    await starters[member]()
    log(`${member} started in ${Date.now() - started} ms`)
  }
  return currentEnv(env)
}

/** The env for the running stack; throws when an embedded member is not running. */
export const currentEnv = (env: NodeJS.ProcessEnv = process.env): StackEnv => {
  const out = {} as StackEnv
  for (const key of stackEnvKeys) {
    const external = env[key]
    if (external) {
      out[key] = external
      continue
    }
    const member = memberOf[key]
    if (!running[member]()) throw new StackError(`${member} is not running; run: bun run stack up`)
    out[key] = envOf(member)
  }
  return out
}

/**
 * Stops one embedded member, leaving its data (PostgreSQL's) and its port for the next `up`, which
 * starts it again: for tests of what an outage does.
 */
export const stopMember = async (member: Member): Promise<void> => {
  if (member === "postgres") stopPostgres()
  else await stopPid(running[member]())
}

/** Stops only what `up` started (pid files under .stack/), leaving data for the next `up`. */
export const down = async (): Promise<void> => {
  for (const member of ["postgres", "redis", "kafka"] as const) await stopMember(member)
}

/** Pids of the embedded members that are alive, for tests and `stack status`. */
export const runningPids = (): Partial<Record<Member, number>> => {
  const out: Partial<Record<Member, number>> = {}
  for (const member of ["postgres", "redis", "kafka"] as const) {
    const pid = running[member]()
    if (pid) out[member] = pid
  }
  return out
}

export const formatEnv = (env: StackEnv): string => stackEnvKeys.map((k) => `${k}=${env[k]}`).join("\n")

/** For entry points: fill unset env vars from the embedded stack, starting it when needed. */
export const ensureEnv = async (): Promise<StackEnv> => {
  const env = await up(process.env)
  Object.assign(process.env, env)
  return env
}
