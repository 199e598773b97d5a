/**
 * The platform's processes as the chaos run drives them: each a `bun` child running an entry point,
 * which the run SIGKILLs, stops (SIGSTOP) and starts again at moments of its choosing — unlike
 * `bun run services`' supervisor, which restarts on its own schedule. Output goes to a log file per
 * process under the run's directory, and the current incarnation's is kept for waiting on a line.
 */
import { appendFileSync } from "node:fs"
import { join } from "node:path"
import type { Subprocess } from "bun"
import { Duration, Effect, Schedule } from "effect"
import { projectRoot } from "../../src/platform/project-root.ts"

export interface Proc {
  readonly name: string
  readonly pid: () => number | undefined
  readonly alive: () => boolean
  /** Starts the process unless it runs; `argv` replaces the one it was made with. */
  readonly start: (argv?: ReadonlyArray<string>) => Effect.Effect<void>
  /** SIGKILL or SIGTERM: sent, then waited for. */
  readonly stop: (signal: "SIGKILL" | "SIGTERM") => Effect.Effect<void>
  readonly signal: (signal: "SIGSTOP" | "SIGCONT") => Effect.Effect<void>
  /** Waits until the current incarnation printed one of `texts`; returns which. */
  readonly waitFor: (
    texts: ReadonlyArray<string>,
    timeout?: Duration.DurationInput,
  ) => Effect.Effect<string, string>
  readonly argv: () => ReadonlyArray<string>
}

const keep = 64_000

export const makeProc = (
  name: string,
  initialArgv: ReadonlyArray<string>,
  env: () => Record<string, string | undefined>,
  logDir: string,
): Proc => {
  let child: Subprocess<"ignore", "pipe", "pipe"> | undefined
  let argv = initialArgv
  let out = ""
  const log = join(logDir, `${name}.log`)
  const pump = async (stream: ReadableStream<Uint8Array>, owner: Subprocess) => {
    const decoder = new TextDecoder()
    for await (const chunk of stream) {
      const text = decoder.decode(chunk, { stream: true })
      appendFileSync(log, text)
      if (child === owner) out = (out + text).slice(-keep)
    }
  }
  const alive = () => child !== undefined && child.exitCode === null && child.signalCode === null
  return {
    name,
    pid: () => (alive() ? child?.pid : undefined),
    alive,
    argv: () => argv,
    start: (next) =>
      Effect.sync(() => {
        if (alive()) return
        if (next) argv = next
        out = ""
        appendFileSync(log, `\n--- ${new Date().toISOString()} start: ${argv.join(" ")}\n`)
        const spawned = Bun.spawn([process.execPath, ...argv], {
          cwd: projectRoot,
          env: env(),
          stdin: "ignore",
          stdout: "pipe",
          stderr: "pipe",
        })
        child = spawned
        void pump(spawned.stdout, spawned)
        void pump(spawned.stderr, spawned)
      }),
    stop: (signal) =>
      Effect.gen(function* () {
        const c = child
        if (!c || !alive()) return
        c.kill(signal)
        if (signal === "SIGTERM") {
          const exited = yield* Effect.promise(() => c.exited).pipe(
            Effect.timeout("15 seconds"),
            Effect.option,
          )
          if (exited._tag === "None") c.kill("SIGKILL")
        }
        yield* Effect.promise(() => c.exited)
        appendFileSync(log, `\n--- ${new Date().toISOString()} ${signal}\n`)
      }),
    signal: (signal) =>
      Effect.sync(() => {
        if (alive()) child?.kill(signal)
      }),
    waitFor: (texts, timeout = "60 seconds") =>
      Effect.suspend(() => {
        const found = texts.find((t) => out.includes(t))
        return found !== undefined ? Effect.succeed(found) : Effect.fail("not yet")
      }).pipe(
        Effect.retry(Schedule.spaced(Duration.millis(50))),
        Effect.timeoutFail({
          duration: timeout,
          onTimeout: () => `${name} did not print ${texts.join(" or ")} (see ${log})`,
        }),
      ),
  }
}
