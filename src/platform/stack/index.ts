/**
 * The embedded local stack: a private PostgreSQL cluster with logical WAL, a private Redis and an
 * in-memory Kafka cluster (librdkafka's mock, hosted by Debian's `kcat`). State, pid files and logs
 * live under `.stack/`. A service whose env var is already set is used as-is and never started.
 * Each member's process is managed in its own module (postgres.ts, redis.ts, kafka.ts); apt.ts
 * installs what they need, ports.ts keeps their ports.
 *
 * This runs before any Effect layer exists (it produces the env the layers read), so it is plain
 * process management.
 */
import { mkdirSync } from "node:fs"
import { ensurePackages } from "./apt.ts"
import { kafka } from "./kafka.ts"
import { postgres } from "./postgres.ts"
import { log, type Member, StackError, type StackMember, stackDir } from "./processes.ts"
import { redis } from "./redis.ts"

export { ensureTool, installOsPackages } from "./apt.ts"
export { embeddedKafkaBrokers, spawnKafkaMock } from "./kafka.ts"
export { freePort } from "./ports.ts"
export { type Member, pidAlive, StackError, stackDir } from "./processes.ts"

export type StackEnv = {
  DATABASE_URL: string
  REDIS_URL: string
  KAFKA_BROKERS: string
}
export const stackEnvKeys = ["DATABASE_URL", "REDIS_URL", "KAFKA_BROKERS"] as const
const memberOf: Record<keyof StackEnv, Member> = {
  DATABASE_URL: "postgres",
  REDIS_URL: "redis",
  KAFKA_BROKERS: "kafka",
}

const members: Record<Member, StackMember> = { postgres, redis, kafka }
const memberNames = ["postgres", "redis", "kafka"] as const

/** Members that the environment does not already point at an external service. */
const embeddedMembers = (env: NodeJS.ProcessEnv): Array<Member> =>
  stackEnvKeys.filter((k) => !env[k]).map((k) => memberOf[k])

/**
 * Starts every embedded member that is not running (so a crashed member comes back), and returns
 * the full env: external values where set, embedded ones otherwise. Calling it twice is a no-op.
 */
export const up = async (env: NodeJS.ProcessEnv = process.env): Promise<StackEnv> => {
  const wanted = embeddedMembers(env)
  mkdirSync(stackDir(), { recursive: true })
  ensurePackages(wanted)
  for (const member of wanted) {
    if (members[member].running()) continue
    const started = Date.now()
    await members[member].start()
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
    if (!members[member].running()) throw new StackError(`${member} is not running; run: bun run stack up`)
    out[key] = members[member].env()
  }
  return out
}

/**
 * Stops one embedded member, leaving its data (PostgreSQL's) and its port for the next `up`, which
 * starts it again: for tests of what an outage does.
 */
export const stopMember = (member: Member): Promise<void> => members[member].stop()

/** Stops only what `up` started (pid files under .stack/), leaving data for the next `up`. */
export const down = async (): Promise<void> => {
  for (const member of memberNames) await stopMember(member)
}

/** Pids of the embedded members that are alive, for tests and `stack status`. */
export const runningPids = (): Partial<Record<Member, number>> => {
  const out: Partial<Record<Member, number>> = {}
  for (const member of memberNames) {
    const pid = members[member].running()
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
