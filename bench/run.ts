/**
 * `bun run bench [name] [flags]` — runs one benchmark (`bench/<name>.ts`, which exports its `flags`
 * and `run`) or lists them; `bun run bench <name> --help` lists its flags.
 * The embedded stack is started when the env vars are unset, as for every other command.
 */
import { readdirSync } from "node:fs"
import { ensureEnv } from "../src/platform/stack.ts"
import { benchFlags, type Flags, type FlagValues } from "./options.ts"

const available = readdirSync(import.meta.dir)
  .filter(
    (f) => f.endsWith(".ts") && !["run.ts", "report.ts", "options.ts"].includes(f) && !f.startsWith("_"),
  )
  .map((f) => f.slice(0, -3))
  .sort()

const name = process.argv[2]
if (!name || name === "--help" || name === "-h" || !available.includes(name)) {
  const usage = `usage: bun run bench <${available.join("|") || "name"}> [options]\n\nEach writes bench/results/<name>.json and prints a table.`
  if (name && name !== "--help" && name !== "-h") {
    console.error(`unknown benchmark: ${name}\n\n${usage}`)
    process.exit(2)
  }
  console.log(usage)
  process.exit(name ? 0 : 2)
}

process.env.NODE_NO_WARNINGS = "1"
const mod = (await import(`./${name}.ts`)) as {
  flags: Flags
  run: (flags: FlagValues<Flags>) => Promise<void>
}
// Flags first: a bad one is a usage message, with nothing started.
const flags = benchFlags(name, process.argv.slice(3), mod.flags)
await ensureEnv()
await mod.run(flags)
process.exit(0)
