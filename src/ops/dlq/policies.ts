/**
 * The retry policy of each registered consumer group, shown by `dlq stats` next to its DLQ figures
 * so an operator reads how many attempts an entry had before it landed there.
 */
import { nominalDelays, type RetryPolicy } from "../../engine/consumer/retry.ts"
import { consumers } from "../../hashinsight/consumers/index.ts"

export interface GroupRetryPolicy extends RetryPolicy {
  readonly consumerGroup: string
  /** The waits before attempts 2..maxAttempts, without jitter. */
  readonly delaysMs: ReadonlyArray<number>
}

export const retryPolicies = (): ReadonlyArray<GroupRetryPolicy> =>
  Object.values(consumers).map((d) => ({
    consumerGroup: d.group,
    ...d.retry,
    delaysMs: nominalDelays(d.retry),
  }))
