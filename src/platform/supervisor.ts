/**
 * A small process supervisor for `bun run services`: each platform process is a child with its
 * output prefixed by its name; a child that exits unexpectedly is restarted with backoff; closing
 * the scope sends SIGTERM to every child, waits for them to drain, and SIGKILLs stragglers.
 * Separate processes (not fibers) so each can be killed and restarted on its own, as in production.
 */
import type { Subprocess } from "bun"
import { Duration, Effect, Schedule } from "effect"
import { projectRoot } from "./project-root.ts"

export interface ChildSpec {
  readonly name: string
  readonly argv: ReadonlyArray<string>
  readonly env?: Record<string, string>
}

const colors = [36, 33, 35, 32, 34, 91, 92]

const pipeLines = async (stream: ReadableStream<Uint8Array>, prefix: string, out: NodeJS.WriteStream) => {
  const decoder = new TextDecoder()
  let rest = ""
  for await (const chunk of stream) {
    const lines = (rest + decoder.decode(chunk, { stream: true })).split("\n")
    rest = lines.pop() ?? ""
    for (const line of lines) out.write(`${prefix} ${line}\n`)
  }
  if (rest) out.write(`${prefix} ${rest}\n`)
}

const spawnChild = (spec: ChildSpec, prefix: string) =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const child = Bun.spawn(["bun", ...spec.argv], {
        cwd: projectRoot,
        env: { ...process.env, ...spec.env },
        stdin: "ignore",
        stdout: "pipe",
        stderr: "pipe",
      })
      void pipeLines(child.stdout, prefix, process.stdout)
      void pipeLines(child.stderr, prefix, process.stderr)
      return child
    }),
    (child) => stop(child, spec.name),
  )

const stop = (child: Subprocess, name: string) =>
  Effect.gen(function* () {
    if (child.exitCode !== null || child.signalCode !== null) return
    child.kill("SIGTERM")
    // Run as a release, which is uninterruptible: without `interruptible` the time limit could not
    // cut the wait short, and a child that never drains was waited for forever.
    const drained = yield* Effect.promise(() => child.exited).pipe(
      Effect.interruptible,
      Effect.timeout(Duration.seconds(15)),
      Effect.option,
    )
    if (drained._tag === "None") {
      yield* Effect.logWarning(`${name} did not drain within 15 s; killing it`)
      child.kill("SIGKILL")
      yield* Effect.promise(() => child.exited)
    }
  })

/** Runs one child until it exits; an exit while we are not shutting down is an error to retry. */
const runChild = (spec: ChildSpec, prefix: string) =>
  Effect.scoped(
    Effect.gen(function* () {
      const child = yield* spawnChild(spec, prefix)
      const code = yield* Effect.promise(() => child.exited)
      return yield* Effect.fail(`${spec.name} exited with ${child.signalCode ?? `code ${code}`}`)
    }),
  )

const restartBackoff = Schedule.exponential("500 millis", 2).pipe(
  Schedule.union(Schedule.spaced("15 seconds")),
)

/** Supervises every child until interrupted; interruption stops them all in parallel. */
export const supervise = (specs: ReadonlyArray<ChildSpec>) =>
  Effect.forEach(
    specs,
    (spec, i) => {
      const prefix = `\x1b[${colors[i % colors.length]}m${spec.name.padEnd(18)}\x1b[0m|`
      return runChild(spec, prefix).pipe(
        Effect.tapError((reason) => Effect.logWarning(`${reason}; restarting`)),
        Effect.retry(restartBackoff),
      )
    },
    { concurrency: "unbounded", discard: true },
  )
