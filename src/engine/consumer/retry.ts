/**
 * A retry policy is data — validated by a Schema, storable, printable — and turns into the
 * `Schedule` that drives a consumer's attempts. Attempts run outside the handler's transaction, so
 * nothing is held while waiting.
 */
import { Duration, Schedule, Schema } from "effect"

const Millis = Schema.Number.pipe(Schema.finite(), Schema.nonNegative())

export const RetryPolicy = Schema.Struct({
  /** Attempts in total, the first included. */
  maxAttempts: Schema.Int.pipe(Schema.between(1, 100)),
  baseDelayMs: Millis,
  factor: Schema.Number.pipe(Schema.finite(), Schema.greaterThanOrEqualTo(1)),
  capMs: Millis,
  /** Each delay is scaled by a random factor in [1 - jitter, 1 + jitter]; 0 = exact delays. */
  jitter: Schema.Number.pipe(Schema.between(0, 1)),
})
export type RetryPolicy = typeof RetryPolicy.Type

export const defaultRetryPolicy: RetryPolicy = {
  maxAttempts: 3,
  baseDelayMs: 200,
  factor: 2,
  capMs: 10_000,
  jitter: 0.2,
}

export const decodeRetryPolicy = Schema.decodeUnknownSync(RetryPolicy)

/** The delays before attempts 2..maxAttempts, without jitter (for docs, `dlq stats` and tests). */
export const nominalDelays = (p: RetryPolicy): ReadonlyArray<number> =>
  Array.from({ length: p.maxAttempts - 1 }, (_, i) => Math.min(p.baseDelayMs * p.factor ** i, p.capMs))

/**
 * The policy's delays with no end: exponential from `baseDelayMs` by `factor`, jittered, capped at
 * `capMs`. A dependency outage is waited out on such a schedule (outage.ts).
 */
export const backoffSchedule = (p: Omit<RetryPolicy, "maxAttempts">): Schedule.Schedule<unknown> => {
  const exponential = Schedule.exponential(Duration.millis(p.baseDelayMs), p.factor)
  const jittered =
    p.jitter > 0 ? Schedule.jitteredWith(exponential, { min: 1 - p.jitter, max: 1 + p.jitter }) : exponential
  // Whole milliseconds: a jittered fraction would let float error carry a delay past the cap.
  return jittered.pipe(
    Schedule.modifyDelay((_, delay) =>
      Duration.millis(Math.round(Math.min(Duration.toMillis(delay), p.capMs))),
    ),
  )
}

export const retrySchedule = (p: RetryPolicy): Schedule.Schedule<unknown> =>
  backoffSchedule(p).pipe(Schedule.intersect(Schedule.recurs(p.maxAttempts - 1)))
