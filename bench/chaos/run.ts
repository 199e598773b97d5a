/**
 * `bun run chaos [scenario…] [--minutes N] [--rate N] [--seed S] [--members N] [--json]` — the whole
 * platform under steady keyed writes and injected faults, audited from the database and Kafka:
 * a table per scenario on stdout (or, with `--json`, the result) and `bench/results/chaos.json`.
 * Exits 1 when any scenario's audit found something wrong.
 */
import { mkdirSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { Effect, Logger, LogLevel } from "effect"
import { Platform } from "../../src/platform/layers.ts"
import { ensureEnv, stackDir } from "../../src/platform/stack/index.ts"
import { commandArgs, number, toggle } from "../options.ts"
import { machine, resultsDir } from "../report.ts"
import { passed, runChaos } from "./chaos.ts"
import { type ScenarioName, scenarioNames } from "./scenarios.ts"
import { type ChaosTable, resultRows, table } from "./table.ts"

const { flags, positionals } = commandArgs(
  "bun run chaos",
  process.argv.slice(2),
  {
    minutes: number(
      5,
      "minutes of load in all, shared by the scenarios (faults that take longer extend theirs)",
    ),
    rate: number(40, "keyed writes per second"),
    seed: number(1, "seed of the fault schedule (victims, moments, relay modes)"),
    members: number(3, "members per consumer group"),
    json: toggle("print the result as JSON instead of the table"),
  },
  { name: "scenario", choices: scenarioNames },
)
const chosen = (positionals.length > 0 ? positionals : scenarioNames) as ReadonlyArray<ScenarioName>

process.env.NODE_NO_WARNINGS = "1"
await ensureEnv()
const logDir = join(stackDir(), "chaos", new Date().toISOString().replaceAll(":", "-"))
mkdirSync(logDir, { recursive: true })
const say = (line: string) => console.error(`[chaos] ${line}`)
say(`seed ${flags.seed}, ${flags.rate} writes/s, scenarios ${chosen.join(", ")}; process logs in ${logDir}`)

const results = await Effect.runPromise(
  runChaos({
    scenarios: chosen,
    secondsEach: Math.max(5, Math.round((flags.minutes * 60) / chosen.length)),
    rate: flags.rate,
    seed: flags.seed,
    members: flags.members,
    full: true,
    logDir,
    progress: say,
  }).pipe(Effect.scoped, Effect.provide(Platform.layerDb), Logger.withMinimumLogLevel(LogLevel.Warning)),
)

const result: ChaosTable = {
  name: "chaos",
  at: new Date().toISOString(),
  machine: machine(),
  options: {
    scenarios: chosen,
    minutes: flags.minutes,
    rate: flags.rate,
    seed: flags.seed,
    members: flags.members,
  },
  rows: resultRows(results),
  scenarios: results,
}
mkdirSync(resultsDir, { recursive: true })
const file = join(resultsDir, "chaos.json")
writeFileSync(file, `${JSON.stringify(result, null, 2)}\n`)
if (flags.json) console.log(JSON.stringify(result, null, 2))
else console.log(`${table(results)}\nwrote ${file}`)
process.exit(results.every(passed) ? 0 : 1)
