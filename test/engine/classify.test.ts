import { describe, expect, test } from "bun:test"
import { SqlError } from "@effect/sql/SqlError"
import { Effect, type Schedule, ScheduleDecision, ScheduleIntervals } from "effect"
import { classify } from "../../src/engine/consumer/classify.ts"
import {
  DecodeFailed,
  Fatal,
  FencingRejected,
  LockContended,
  MalformedHeader,
  Retryable,
  UnknownEventType,
} from "../../src/engine/consumer/errors.ts"
import { decodeRetryPolicy, nominalDelays, retrySchedule } from "../../src/engine/consumer/retry.ts"
import { MissingHeader } from "../../src/engine/record.ts"
import { KafkaError } from "../../src/platform/kafka.ts"
import { RedisError } from "../../src/platform/redis.ts"

const sqlState = (code: string) => new SqlError({ cause: Object.assign(new Error(`pg ${code}`), { code }) })

const table: ReadonlyArray<readonly [string, unknown, "retryable" | "fatal", string]> = [
  ["connection exception (class 08)", sqlState("08006"), "retryable", "SqlError"],
  ["connection refused by the server (08001)", sqlState("08001"), "retryable", "SqlError"],
  ["serialization failure", sqlState("40001"), "retryable", "SqlError"],
  ["deadlock", sqlState("40P01"), "retryable", "SqlError"],
  ["lock not available", sqlState("55P03"), "retryable", "SqlError"],
  ["statement timeout", sqlState("57014"), "retryable", "SqlError"],
  ["socket reset, no SQLSTATE", sqlState("ECONNRESET"), "retryable", "SqlError"],
  [
    "driver error without any code",
    new SqlError({ cause: new Error("Connection terminated") }),
    "retryable",
    "SqlError",
  ],
  ["invalid text representation (class 22)", sqlState("22P02"), "fatal", "SqlError"],
  ["division by zero (class 22)", sqlState("22012"), "fatal", "SqlError"],
  ["unique violation (class 23)", sqlState("23505"), "fatal", "SqlError"],
  ["not-null violation (class 23)", sqlState("23502"), "fatal", "SqlError"],
  ["invalid password (class 28)", sqlState("28P01"), "fatal", "SqlError"],
  ["insufficient privilege (class 42)", sqlState("42501"), "fatal", "SqlError"],
  ["syntax error (class 42)", sqlState("42601"), "fatal", "SqlError"],
  [
    "kafkajs retriable",
    new KafkaError({ op: "send", cause: { retriable: true } }),
    "retryable",
    "KafkaError",
  ],
  [
    "kafkajs not retriable",
    new KafkaError({ op: "send", cause: { retriable: false } }),
    "fatal",
    "KafkaError",
  ],
  ["redis down", new RedisError({ op: "eval", cause: new Error("ECONNREFUSED") }), "retryable", "RedisError"],
  ["lock contention", new LockContended({ lockKey: "lock:user:1:portfolio" }), "retryable", "LockContended"],
  ["handler says retryable", new Retryable({ message: "upstream 503" }), "retryable", "Retryable"],
  ["handler says fatal", new Fatal({ message: "negative balance" }), "fatal", "Fatal"],
  ["payload does not decode", new DecodeFailed({ eventType: "Work", reason: "x" }), "fatal", "DecodeFailed"],
  [
    "unknown event type",
    new UnknownEventType({ topic: "events.x", eventType: "Nope" }),
    "fatal",
    "UnknownEventType",
  ],
  ["missing id header", new MissingHeader({ header: "id" }), "fatal", "MissingHeader"],
  ["malformed id header", new MalformedHeader({ header: "id", value: "x" }), "fatal", "MalformedHeader"],
  [
    "stale fencing token",
    new FencingRejected({ lockKey: "k", token: 1, newest: 2 }),
    "retryable",
    "FencingRejected",
  ],
  ["unrecognised error: bounded retries", new Error("boom"), "retryable", "Error"],
]

describe("classify", () => {
  test.each(table)("%s", (_, error, kind, tag) => {
    const verdict = classify(error)
    expect(verdict.kind).toBe(kind)
    expect(verdict.tag).toBe(tag)
    expect(verdict.message.length).toBeGreaterThan(0)
  })

  test("a SqlError's message names the SQLSTATE", () => {
    expect(classify(sqlState("23505")).message).toContain("[23505]")
  })
})

/** The delays a schedule would wait, stepped until it stops (as Effect.retry steps it), without waiting. */
const delaysOf = (schedule: Schedule.Schedule<unknown>) =>
  Effect.runPromise(
    Effect.gen(function* () {
      const out: Array<number> = []
      let state = schedule.initial
      let now = 0
      while (out.length < 50) {
        const [next, , decision] = yield* schedule.step(now, undefined, state)
        if (ScheduleDecision.isDone(decision)) break
        const delay = ScheduleIntervals.start(decision.intervals) - now
        out.push(delay)
        now += delay
        state = next
      }
      return out
    }),
  )

describe("retry policy", () => {
  test("turns into a schedule with the policy's delays and attempt count", async () => {
    const policy = decodeRetryPolicy({ maxAttempts: 5, baseDelayMs: 100, factor: 3, capMs: 1000, jitter: 0 })
    expect(await delaysOf(retrySchedule(policy))).toEqual([100, 300, 900, 1000])
    expect(nominalDelays(policy)).toEqual([100, 300, 900, 1000])
  })

  test("jitter stays within its bounds and the cap", async () => {
    const policy = decodeRetryPolicy({ maxAttempts: 4, baseDelayMs: 200, factor: 2, capMs: 500, jitter: 0.5 })
    const ms = await delaysOf(retrySchedule(policy))
    expect(ms.length).toBe(3)
    expect(ms[0]!).toBeGreaterThanOrEqual(100)
    expect(ms[0]!).toBeLessThanOrEqual(300)
    for (const d of ms) expect(d).toBeLessThanOrEqual(500)
  })

  test("an invalid policy is refused", () => {
    expect(() =>
      decodeRetryPolicy({ maxAttempts: 0, baseDelayMs: 1, factor: 2, capMs: 1, jitter: 0 }),
    ).toThrow()
    expect(() =>
      decodeRetryPolicy({ maxAttempts: 3, baseDelayMs: 1, factor: 0.5, capMs: 1, jitter: 0 }),
    ).toThrow()
  })
})
