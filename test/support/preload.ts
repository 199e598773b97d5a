/**
 * Runs once before the test files: fills DATABASE_URL / REDIS_URL / KAFKA_BROKERS from the embedded
 * stack where unset (starting it when needed) and applies migrations, so `bun test` alone works.
 *
 * Kafka, when not given, is a mock cluster of the test run's own rather than the embedded stack's:
 * tests publish to the platform's topics from databases of their own, and a `bun run services` on
 * the embedded stack afterwards would read those events from the start — CRM events of accounts it
 * never had, straight to its DLQ. A fresh mock also keeps test runs from slowing down as the
 * embedded one's history grows (it walks a partition's whole history on every fetch).
 */
import { afterAll } from "bun:test"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Effect } from "effect"
import { Platform } from "../../src/platform/layers.ts"
import { migrate } from "../../src/platform/migrator.ts"
import { ensureEnv, spawnKafkaMock } from "../../src/platform/stack/index.ts"

process.env.NODE_NO_WARNINGS = "1"
const kafkaGiven = Boolean(process.env.KAFKA_BROKERS)
// The stack first: it installs what a fresh machine lacks, kcat included.
await ensureEnv()
if (!kafkaGiven) {
  const { pid, brokers } = await spawnKafkaMock(join(tmpdir(), `hashinsight-test-kafka-${process.pid}.log`), {
    detached: false,
  })
  process.env.KAFKA_BROKERS = brokers
  // A hook in a preload runs once, after every test file. (An "exit" listener here was not called
  // under bun test: the mock outlived the run.)
  afterAll(() => {
    try {
      process.kill(pid, "SIGKILL")
    } catch {
      // already gone
    }
  })
}
await Effect.runPromise(migrate().pipe(Effect.provide(Platform.layerDb)))
