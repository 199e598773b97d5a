/** The consumer groups' registry names and their group ids (contract). */
export const consumerNames = ["portfolio", "intel", "crm-sync"] as const
export type ConsumerName = (typeof consumerNames)[number]

export const consumerGroups: Record<ConsumerName, string> = {
  portfolio: "portfolio-recalc-group",
  intel: "intel-group",
  "crm-sync": "crm-sync-group",
}
