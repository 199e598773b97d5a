/**
 * `bun run bench [name]` — runs one benchmark (`bench/<name>.ts`, which exports `run`) or lists them.
 * The embedded stack is started when the env vars are unset, as for every other command.
 */
import { readdirSync } from "node:fs"
import { ensureEnv } from "../src/platform/stack.ts"

const available = readdirSync(import.meta.dir)
  .filter((f) => f.endsWith(".ts") && !["run.ts", "report.ts"].includes(f) && !f.startsWith("_"))
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
await ensureEnv()
const mod = (await import(`./${name}.ts`)) as { run: (args: ReadonlyArray<string>) => Promise<void> }
await mod.run(process.argv.slice(3))
process.exit(0)
