/** The stack's Kafka: librdkafka's mock cluster of 3 brokers, hosted by Debian's `kcat`. */
import { spawn } from "node:child_process"
import { mkdirSync, openSync, readFileSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { pidAlive, runningFrom, StackError, type StackMember, sleep, stackDir, stopPid } from "./processes.ts"

const kafkaDir = () => join(stackDir(), "kafka")
const kafkaPidFile = () => join(kafkaDir(), "kcat.pid")
const kafkaLog = () => join(kafkaDir(), "kcat.log")

const kafkaRunning = () => runningFrom(kafkaPidFile())

/** Reads the bootstrap list librdkafka logs when its mock cluster replaces `bootstrap.servers`. */
const parseMockBootstrap = (logText: string): string | undefined => /replaced with (\S+)/.exec(logText)?.[1]

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

export const kafka: StackMember = {
  running: kafkaRunning,
  start: startKafka,
  stop: () => stopPid(kafkaRunning()),
  env: () => parseMockBootstrap(readFileSync(kafkaLog(), "utf8")) ?? "",
}
