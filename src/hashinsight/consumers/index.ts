/**
 * The consumer groups `bun run consumer <name>` runs: the registry name → its declared consumer.
 * Handlers use the platform services and the runtime's `Locks` (provided by `memberLayer`).
 */
import type { ConsumerDefinition } from "../../engine/consumer/definition.ts"
import { crmSyncConsumer } from "./crm-sync.ts"
import type { ConsumerName } from "./groups.ts"
import { intelConsumer } from "./intel.ts"
import { portfolioConsumer } from "./portfolio.ts"
import type { PlatformServices } from "./services.ts"

export { type ConsumerName, consumerGroups, consumerNames } from "./groups.ts"
export type { PlatformServices } from "./services.ts"

export const consumers: Partial<Record<ConsumerName, ConsumerDefinition<PlatformServices>>> = {
  portfolio: portfolioConsumer,
  intel: intelConsumer,
  "crm-sync": crmSyncConsumer,
}

/** Every group with the topics it reads: what the lag monitor, health and `bun run lag` follow. */
export const watchedGroups = Object.values(consumers).map((c) => ({
  group: c.group,
  topics: [...new Set(c.subscriptions.map((s) => s.topic.name))],
}))
