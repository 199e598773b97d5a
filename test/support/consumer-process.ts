/**
 * One consumer-group member in its own process, for crash and outage tests:
 * `bun test/support/consumer-process.ts <aggregatetype> <group> [--locked]`. It runs with the runtime's
 * default group settings (what a crash costs in production is what the tests measure) and serves its
 * metrics on METRICS_PORT when set. Its handler writes one row per event to consumer_test_effects,
 * labelled `<payload label>@<pid>@<attempt>` so a test can tell which member processed what, and on
 * which attempt; with `--locked` each event holds the Redis lock of its key. The env names the services,
 * and `COMMIT_INTERVAL_MS` how often it commits offsets (a long one: a member killed before it
 * committed anything).
 */
import { Layer } from "effect"
import { runMain } from "../../src/bin/main.ts"
import { defineConsumer, on } from "../../src/engine/consumer/definition.ts"
import { memberLayer } from "../../src/engine/consumer/runtime.ts"
import { defineTopic } from "../../src/engine/topic.ts"
import { MetricsServer } from "../../src/observe/metrics-server.ts"
import { Platform } from "../../src/platform/layers.ts"
import { WorkPayload, writeEffect } from "./consumer-fixtures.ts"

const [aggregatetype, group, flag] = process.argv.slice(2)
if (!aggregatetype || !group || (flag !== undefined && flag !== "--locked")) {
  console.error("usage: bun test/support/consumer-process.ts <aggregatetype> <group> [--locked]")
  process.exit(2)
}
const topic = defineTopic(aggregatetype, { Work: WorkPayload })
const consumer = defineConsumer({
  name: "crash-test",
  group,
  subscriptions: [
    on(
      topic,
      {
        Work: (p, meta) =>
          writeEffect(group, meta.eventId, meta.tenantId, `${p.label}@${process.pid}@${meta.attempt}`),
      },
      { lockKey: flag === "--locked" ? (_, meta) => `lock:${group}:${meta.key}` : undefined },
    ),
  ],
})

const member = memberLayer(
  consumer,
  process.env.COMMIT_INTERVAL_MS ? { commitIntervalMs: Number(process.env.COMMIT_INTERVAL_MS) } : {},
)

runMain(Layer.launch(Layer.merge(member, MetricsServer.layerConfig)), Platform.layer)
