/** `bun run stack up|down|env|status` — the embedded local stack (see src/platform/stack/index.ts). */
import {
  currentEnv,
  down,
  formatEnv,
  runningPids,
  StackError,
  stackEnvKeys,
  up,
} from "../platform/stack/index.ts"

const usage = `usage: bun run stack <up|down|env|status>

  up      start the embedded PostgreSQL (wal_level=logical), Redis and Kafka mock cluster
          that the env does not already name; prints KEY=value lines (idempotent)
  down    stop what 'up' started; data under .stack/ stays
  env     print 'export KEY=value' lines for: eval "$(bun run stack env)"
  status  print the pids of the running members

Env vars ${stackEnvKeys.join(", ")} that are set are used as-is: nothing is started for them.`

const main = async (cmd: string | undefined): Promise<number> => {
  switch (cmd) {
    case "up": {
      const started = Date.now()
      const external = stackEnvKeys.filter((k) => process.env[k])
      const env = await up()
      console.log(formatEnv(env))
      // Said out loud: after `eval "$(bun run stack env)"` in this shell, up starts nothing.
      if (external.length > 0)
        process.stderr.write(
          `[stack] using ${external.join(", ")} from the environment: nothing started for ${external.length === 1 ? "it" : "them"}\n`,
        )
      process.stderr.write(`[stack] up in ${Date.now() - started} ms\n`)
      return 0
    }
    case "down":
      await down()
      return 0
    case "env":
      console.log(
        formatEnv(currentEnv())
          .split("\n")
          .map((l) => `export ${l}`)
          .join("\n"),
      )
      return 0
    case "status":
      console.log(JSON.stringify(runningPids()))
      return 0
    case "-h":
    case "--help":
      console.log(usage)
      return 0
    default:
      console.error(cmd ? `unknown subcommand: ${cmd}\n\n${usage}` : usage)
      return 2
  }
}

main(process.argv[2]).then(
  (code) => process.exit(code),
  (err) => {
    console.error(err instanceof StackError ? `stack: ${err.message}` : err)
    process.exit(1)
  },
)
