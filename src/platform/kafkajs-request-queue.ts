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
  throttleCheckTimeoutId: ReturnType<typeof setTimeout> | null
}

type Schedule = (this: Queue) => void

const proto = (RequestQueue as { prototype?: { scheduleCheckPendingRequests?: Schedule } } | undefined)
  ?.prototype

const patchedFunctions = new WeakSet<Schedule>()

const patched = (original: Schedule): Schedule =>
  function (this: Queue) {
    if (this.pending.length === 0 && this.throttledUntil <= Date.now()) return
    original.call(this)
  }

/**
 * Applies the patch once and says whether it is in force: an idle queue (nothing pending, no
 * throttle) that asks for a check arms no timer. False when kafkajs's internals are not what the
 * patch was written for (another kafkajs version).
 */
export const patchRequestQueue = (): boolean => {
  const original = proto?.scheduleCheckPendingRequests
  if (proto === undefined || typeof original !== "function") return false
  if (!patchedFunctions.has(original)) {
    const replacement = patched(original)
    patchedFunctions.add(replacement)
    proto.scheduleCheckPendingRequests = replacement
  }
  const idle: Queue = Object.assign(Object.create(proto), {
    pending: [],
    throttledUntil: -1,
    throttleCheckTimeoutId: null,
  })
  proto.scheduleCheckPendingRequests!.call(idle)
  if (idle.throttleCheckTimeoutId === null) return true
  clearTimeout(idle.throttleCheckTimeoutId)
  return false
}
