/**
 * The consumer groups `bun run consumer <name>` can run. Each domain consumer registers its
 * definition here as its handlers land; a name without one is refused rather than run empty,
 * because an empty consumer would commit offsets past events it should have handled.
 */
import type { SqlClient } from "@effect/sql"
import type { ConsumerDefinition } from "../../engine/consumer/definition.ts"
import type { Kafka } from "../../platform/kafka.ts"
import type { Redis } from "../../platform/redis.ts"

export const consumerNames = ["portfolio", "intel", "crm-sync"] as const
export type ConsumerName = (typeof consumerNames)[number]

/** Consumer group ids (contract). */
export const consumerGroups: Record<ConsumerName, string> = {
  portfolio: "portfolio-recalc-group",
  intel: "intel-group",
  "crm-sync": "crm-sync-group",
}

/** What a registered consumer's handlers may use: the platform services. */
export type PlatformServices = SqlClient.SqlClient | Redis | Kafka

export const consumers: Partial<Record<ConsumerName, ConsumerDefinition<PlatformServices>>> = {}
