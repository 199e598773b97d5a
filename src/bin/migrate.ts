/** `bun run migrate` — applies pending migrations (embedded stack started when env is unset). */
import { Effect } from "effect"
import { Platform } from "../platform/layers.ts"
import { migrate } from "../platform/migrator.ts"
import { runMain } from "./main.ts"

runMain(
  Effect.gen(function* () {
    const r = yield* migrate()
    yield* Effect.logInfo(`migrations: ${r.applied.length} applied, ${r.skipped} already up to date`)
  }),
  Platform.layerDb,
)
