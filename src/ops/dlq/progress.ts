/**
 * Replay progress on stderr (stdout stays clean for `--json`): a redrawn bar on a terminal, plain
 * `replayed n/N` lines otherwise so logs and CI output stay readable.
 */
import { Effect } from "effect"
import type { OnProgress } from "./replay.ts"

const barWidth = 30

export const progressBar = (done: number, total: number): string => {
  const filled = total === 0 ? barWidth : Math.round((done / total) * barWidth)
  return `[${"#".repeat(filled)}${".".repeat(barWidth - filled)}] ${done}/${total}`
}

export interface Progress {
  readonly update: OnProgress
  /** Ends a redrawn bar's line; the run may stop short of its estimate (another replay took some). */
  readonly finish: Effect.Effect<void>
}

export const stderrProgress = (stream: NodeJS.WriteStream = process.stderr): Progress => {
  if (!stream.isTTY)
    return {
      update: (done, total) => Effect.sync(() => stream.write(`replayed ${done}/${total}\n`)),
      finish: Effect.void,
    }
  let drawn = false
  return {
    update: (done, total) =>
      Effect.sync(() => {
        drawn = true
        stream.write(`\r${progressBar(done, total)}`)
      }),
    finish: Effect.sync(() => drawn && stream.write("\n")),
  }
}
