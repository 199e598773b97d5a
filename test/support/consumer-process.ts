/**
 * One consumer-group member in its own process, for crash tests:
 * `bun test/support/consumer-process.ts <aggregatetype> <group>`. Its handler writes one row per
 * event to consumer_test_effects; the env names the services, and `COMMIT_INTERVAL_MS` how often
 * it commits offsets (a long one: a member killed before it committed anything).
 */
import { Layer } from "effect"
import { runMain } from "../../src/bin/main.ts"
import { defineConsumer, on } from "../../src/engine/consumer/definition.ts"
import { memberLayer } from "../../src/engine/consumer/runtime.ts"
import { defineTopic } from "../../src/engine/topic.ts"
import { PlatformLive } from "../../src/platform/layers.ts"
import { fastGroup, WorkPayload, writeEffect } from "./consumer-fixtures.ts"

const [aggregatetype, group] = process.argv.slice(2)
if (!aggregatetype || !group) {
  console.error("usage: bun test/support/consumer-process.ts <aggregatetype> <group>")
  process.exit(2)
}
const topic = defineTopic(aggregatetype, { Work: WorkPayload })
const consumer = defineConsumer({
  name: "crash-test",
  group,
  subscriptions: [on(topic, { Work: (p, meta) => writeEffect(group, meta.eventId, meta.tenantId, p.label) })],
})

runMain(
  Layer.launch(
    memberLayer(consumer, {
      sessionTimeoutMs: fastGroup.sessionTimeout,
      heartbeatIntervalMs: fastGroup.heartbeatInterval,
      rebalanceTimeoutMs: fastGroup.rebalanceTimeout,
      ...(process.env.COMMIT_INTERVAL_MS ? { commitIntervalMs: Number(process.env.COMMIT_INTERVAL_MS) } : {}),
    }),
  ),
  PlatformLive,
)
