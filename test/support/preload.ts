/**
 * Runs once before the test files: fills DATABASE_URL / REDIS_URL / KAFKA_BROKERS from the embedded
 * stack where unset (starting it when needed) and applies migrations, so `bun test` alone works.
 */
import { Effect } from "effect"
import { DbLayer } from "../../src/platform/layers.ts"
import { migrate } from "../../src/platform/migrator.ts"
import { ensureEnv } from "../../src/platform/stack.ts"

process.env.NODE_NO_WARNINGS = "1"
await ensureEnv()
await Effect.runPromise(migrate().pipe(Effect.provide(DbLayer)))
