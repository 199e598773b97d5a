/**
 * `bun run lag [--json] [--watch] [--interval N]` — lag of HashInsight's consumer groups per topic
 * and partition. Bad arguments print the usage and exit 2.
 */
import { ValidationError } from "@effect/cli"
import { BunContext } from "@effect/platform-bun"
import { Console, Effect, Layer } from "effect"
import { watchedGroups } from "../hashinsight/consumers/index.ts"
import { lagCli } from "../observe/lag-cli.ts"
import { AppConfig } from "../platform/config.ts"
import { runMain } from "./main.ts"

const { run, usage } = lagCli(watchedGroups)

runMain(
  run(process.argv).pipe(
    Effect.catchIf(ValidationError.isValidationError, () =>
      Console.error(usage).pipe(Effect.zipRight(Effect.sync(() => (process.exitCode = 2)))),
    ),
  ),
  Layer.merge(AppConfig.layer, BunContext.layer),
)
