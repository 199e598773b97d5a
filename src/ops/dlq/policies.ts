/**
 * The retry policy of each consumer group, shown by `dlq stats` next to its DLQ figures so an
 * operator reads how many attempts an entry had before it landed there. The application hands in
 * its consumers (`src/bin/dlq.ts`).
 */
import { nominalDelays, type RetryPolicy } from "../../engine/consumer/retry.ts"

export interface GroupRetryPolicy extends RetryPolicy {
  readonly consumerGroup: string
  /** The waits before attempts 2..maxAttempts, without jitter. */
  readonly delaysMs: ReadonlyArray<number>
}

export const retryPolicies = (
  consumers: ReadonlyArray<{ readonly group: string; readonly retry: RetryPolicy }>,
): ReadonlyArray<GroupRetryPolicy> =>
  consumers.map((d) => ({ consumerGroup: d.group, ...d.retry, delaysMs: nominalDelays(d.retry) }))
