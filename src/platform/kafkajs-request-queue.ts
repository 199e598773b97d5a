/**
 * kafkajs 2.2.4 (the last release; upstream is unmaintained) re-arms a timer after every check of
 * a connection's request queue, even with nothing pending: `throttledUntil` starts at -1, so the
 * delay is negative and runs as 1 ms — a 1 kHz timer per broker connection for the life of the
 * process (tulios/kafkajs#1556, #1704; the fixes #1667 and #1768 were never merged), most of an
 * idle process's CPU (README, Benchmarks). It also was the source of Bun's `TimeoutNegativeWarning`
 * at start.
 *
 * The patch skips the timer only when nothing is pending and no throttle is in force; a queued
 * request (throttled, or over the in-flight limit) is still checked exactly as before.
 */
// @ts-expect-error kafkajs ships no types for its internals
import RequestQueue from "kafkajs/src/network/requestQueue/index.js"

interface Queue {
  readonly pending: ReadonlyArray<unknown>
  readonly throttledUntil: number
}

const proto = (RequestQueue as { prototype: { scheduleCheckPendingRequests: (this: Queue) => void } })
  .prototype
const schedule = proto.scheduleCheckPendingRequests

proto.scheduleCheckPendingRequests = function (this: Queue) {
  if (this.pending.length === 0 && this.throttledUntil <= Date.now()) return
  schedule.call(this)
}
