/**
 * A Kafka cluster that tests can break on purpose: librdkafka's mock cluster hosted by a small C
 * program (test/support/kafka-fault/fault-cluster.c) that takes commands on stdin. The program is
 * compiled on first use into `.stack/bin/`, named by the source's hash so an edited source is
 * rebuilt; gcc and librdkafka-dev are installed with apt when missing and we are root.
 */
import { type ChildProcessByStdio, spawn, spawnSync } from "node:child_process"
import { createHash } from "node:crypto"
import { existsSync, mkdirSync, readFileSync, renameSync } from "node:fs"
import { join } from "node:path"
import { createInterface } from "node:readline"
import type { Readable, Writable } from "node:stream"
import { Effect } from "effect"
import { projectRoot } from "../../src/platform/project-root.ts"

const source = join(import.meta.dir, "kafka-fault", "fault-cluster.c")
const header = "/usr/include/librdkafka/rdkafka_mock.h"

/** Kafka protocol error codes tests inject. */
export const KafkaErrorCode = {
  NOT_LEADER_FOR_PARTITION: 6,
  REQUEST_TIMED_OUT: 7,
  NOT_ENOUGH_REPLICAS: 19,
  LEADER_NOT_AVAILABLE: 5,
} as const

export interface FaultCluster {
  /** Comma-separated bootstrap servers, as KAFKA_BROKERS wants them. */
  readonly bootstrap: string
  readonly brokers: ReadonlyArray<string>
  /** Takes broker `id` (1-based; -1 = all) off the network; its partitions keep it as leader. */
  readonly down: (id: number) => Promise<void>
  readonly up: (id: number) => Promise<void>
  /** The next `count` Produce requests (any broker) fail with Kafka error `code`. */
  readonly produceErrors: (code: number, count: number) => Promise<void>
  /** The next `count` requests of `api` (e.g. "Fetch", "Metadata") fail with `code`. */
  readonly requestErrors: (api: string, code: number, count: number) => Promise<void>
  readonly rtt: (id: number, ms: number) => Promise<void>
  readonly partitions: (topic: string, count: number) => Promise<void>
  readonly leader: (topic: string, partition: number, id: number) => Promise<void>
  readonly stop: () => Promise<void>
}

export class FaultClusterError extends Error {
  override readonly name = "FaultClusterError"
}

const has = (cmd: string) => spawnSync("sh", ["-c", `command -v ${cmd}`]).status === 0

const ensureToolchain = () => {
  if (has("gcc") && existsSync(header)) return
  if (process.getuid?.() !== 0 || !has("apt-get"))
    throw new FaultClusterError(
      "the Kafka fault cluster needs a C compiler and librdkafka headers: sudo apt-get install -y gcc librdkafka-dev",
    )
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" }
  spawnSync("apt-get", ["update", "-qq"], { stdio: "ignore", env })
  const r = spawnSync(
    "apt-get",
    ["install", "-y", "-qq", "--no-install-recommends", "gcc", "librdkafka-dev"],
    {
      encoding: "utf8",
      env,
    },
  )
  if (r.status !== 0) throw new FaultClusterError(`apt-get install gcc librdkafka-dev failed: ${r.stderr}`)
}

/** Path of the compiled program, building it when this source version has not been built yet. */
export const faultClusterBinary = (): string => {
  const hash = createHash("sha256").update(readFileSync(source)).digest("hex").slice(0, 12)
  const dir = join(projectRoot, ".stack", "bin")
  const bin = join(dir, `kafka-fault-${hash}`)
  if (existsSync(bin)) return bin
  ensureToolchain()
  mkdirSync(dir, { recursive: true })
  // Build beside the target and rename, so test files starting at once never run a half-written file.
  const tmp = `${bin}.${process.pid}.tmp`
  const r = spawnSync("gcc", ["-O2", "-o", tmp, source, "-lrdkafka"], { encoding: "utf8" })
  if (r.status !== 0) throw new FaultClusterError(`building ${source} failed: ${r.stderr.trim()}`)
  renameSync(tmp, bin)
  return bin
}

type Proc = ChildProcessByStdio<Writable, Readable, Readable>

export const startFaultCluster = async (options: { brokers?: number } = {}): Promise<FaultCluster> => {
  const proc: Proc = spawn(faultClusterBinary(), [String(options.brokers ?? 3)], {
    stdio: ["pipe", "pipe", "pipe"],
  })
  const lines = createInterface({ input: proc.stdout })
  let stderr = ""
  proc.stderr.on("data", (d) => {
    stderr += d.toString()
  })
  // The program answers commands in order, one line each: a FIFO of waiters matches them up.
  const waiting: Array<{ ok: () => void; fail: (e: Error) => void; command: string }> = []
  let bootstrap: ((line: string) => void) | undefined
  const firstLine = new Promise<string>((ok) => {
    bootstrap = ok
  })
  lines.on("line", (line) => {
    if (bootstrap) {
      bootstrap(line)
      bootstrap = undefined
      return
    }
    const w = waiting.shift()
    if (!w) return
    if (line === "ok") w.ok()
    else w.fail(new FaultClusterError(`fault cluster '${w.command}': ${line}`))
  })
  let exited = false
  const exit = new Promise<void>((ok) =>
    proc.once("exit", () => {
      exited = true
      for (const w of waiting.splice(0)) w.fail(new FaultClusterError(`fault cluster exited: ${stderr}`))
      ok()
    }),
  )
  const servers = await Promise.race([
    firstLine,
    exit.then(() => {
      throw new FaultClusterError(`fault cluster did not start: ${stderr.trim()}`)
    }),
  ])

  const command = (line: string) =>
    new Promise<void>((ok, fail) => {
      if (exited) return fail(new FaultClusterError(`fault cluster exited before '${line}'`))
      waiting.push({ ok, fail, command: line })
      proc.stdin.write(`${line}\n`)
    })

  const stop = async () => {
    if (exited) return
    proc.stdin.end("quit\n")
    const timer = setTimeout(() => proc.kill("SIGKILL"), 3000)
    await exit
    clearTimeout(timer)
  }

  return {
    bootstrap: servers,
    brokers: servers.split(","),
    down: (id) => command(`down ${id}`),
    up: (id) => command(`up ${id}`),
    produceErrors: (code, count) => command(`err Produce ${code} ${count}`),
    requestErrors: (api, code, count) => command(`err ${api} ${code} ${count}`),
    rtt: (id, ms) => command(`rtt ${id} ${ms}`),
    partitions: (topic, count) => command(`partitions ${topic} ${count}`),
    leader: (topic, partition, id) => command(`leader ${topic} ${partition} ${id}`),
    stop,
  }
}

/** The cluster for the enclosing scope: started on acquire, stopped when the scope closes. */
export const faultCluster = (options: { brokers?: number } = {}) =>
  Effect.acquireRelease(
    Effect.tryPromise({ try: () => startFaultCluster(options), catch: (e) => e as FaultClusterError }),
    (c) => Effect.promise(() => c.stop()).pipe(Effect.timeout("5 seconds"), Effect.ignore),
  )
