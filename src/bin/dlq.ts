/**
 * `bun run dlq stats|list|show <id>|replay` — the DLQ operator CLI over HashInsight's consumer
 * groups. Bad arguments print the usage and exit 2 (scripts can tell them from a failed operation,
 * which exits 1 with one line).
 */
import { ValidationError } from "@effect/cli"
import { BunContext } from "@effect/platform-bun"
import { Console, Effect, Layer } from "effect"
import { consumers } from "../hashinsight/consumers/index.ts"
import { dlqCli } from "../ops/dlq/cli.ts"
import { retryPolicies } from "../ops/dlq/policies.ts"
import { AppConfig } from "../platform/config.ts"
import { runMain } from "./main.ts"

const { run, usage } = dlqCli(retryPolicies(Object.values(consumers)))

runMain(
  run(process.argv).pipe(
    Effect.catchIf(ValidationError.isValidationError, () =>
      Console.error(usage).pipe(Effect.zipRight(Effect.sync(() => (process.exitCode = 2)))),
    ),
  ),
  Layer.merge(AppConfig.layer, BunContext.layer),
)
