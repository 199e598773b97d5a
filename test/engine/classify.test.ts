import { describe, expect, test } from "bun:test"
import { SqlError } from "@effect/sql/SqlError"
import { Effect, type Schedule, ScheduleDecision, ScheduleIntervals } from "effect"
import { ReplyError } from "ioredis"
import { KafkaJSConnectionError, KafkaJSNumberOfRetriesExceeded } from "kafkajs"
import { classify, type Dependency } from "../../src/engine/consumer/classify.ts"
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
const acquireFailed = (cause: unknown) =>
  new SqlError({ message: "Failed to acquire connection for transaction", cause })
const socket = (code: string) => Object.assign(new Error(`connect ${code} 127.0.0.1:5432`), { code })
const kafkaFailed = (cause: unknown) => new KafkaError({ op: "send", cause })

type Row = readonly [string, unknown, "retryable" | "fatal" | "unavailable", string, Dependency?]

const table: ReadonlyArray<Row> = [
  // The database could not be reached, or went away under the attempt: hold, spend nothing.
  ["connection exception (class 08)", sqlState("08006"), "unavailable", "SqlError", "database"],
  ["connection refused by the server (08001)", sqlState("08001"), "unavailable", "SqlError", "database"],
  ["admin shutdown: the server restarts (57P01)", sqlState("57P01"), "unavailable", "SqlError", "database"],
  ["crash shutdown of another backend (57P02)", sqlState("57P02"), "unavailable", "SqlError", "database"],
  ["cannot connect now: starting up (57P03)", sqlState("57P03"), "unavailable", "SqlError", "database"],
  ["too many connections (53300)", sqlState("53300"), "unavailable", "SqlError", "database"],
  ["socket reset, no SQLSTATE", sqlState("ECONNRESET"), "unavailable", "SqlError", "database"],
  [
    "driver error without any code (connection terminated)",
    new SqlError({ cause: new Error("Connection terminated unexpectedly") }),
    "unavailable",
    "SqlError",
    "database",
  ],
  [
    "checkout refused: the server is down",
    acquireFailed(socket("ECONNREFUSED")),
    "unavailable",
    "SqlError",
    "database",
  ],
  [
    "checkout timed out: the pool stayed busy",
    acquireFailed(new Error("timeout exceeded when trying to connect")),
    "unavailable",
    "SqlError",
    "database",
  ],
  [
    "checkout refused with a SQLSTATE the statement never saw (28P01)",
    acquireFailed(Object.assign(new Error("password authentication failed"), { code: "28P01" })),
    "unavailable",
    "SqlError",
    "database",
  ],
  // The event's own: contention and its statement's time limit are retried by the policy.
  ["serialization failure", sqlState("40001"), "retryable", "SqlError"],
  ["deadlock", sqlState("40P01"), "retryable", "SqlError"],
  ["lock not available", sqlState("55P03"), "retryable", "SqlError"],
  ["statement timeout: the event's own", sqlState("57014"), "retryable", "SqlError"],
  [
    "a prepared statement whose result type a migration changed (0A000 from RevalidateCachedQuery)",
    new SqlError({
      cause: Object.assign(new Error("cached plan must not change result type"), {
        code: "0A000",
        routine: "RevalidateCachedQuery",
      }),
    }),
    "retryable",
    "SqlError",
  ],
  ["a prepared statement dropped under its connection (26000)", sqlState("26000"), "retryable", "SqlError"],
  ["any other feature not supported (0A000)", sqlState("0A000"), "fatal", "SqlError"],
  ["invalid text representation (class 22)", sqlState("22P02"), "fatal", "SqlError"],
  ["division by zero (class 22)", sqlState("22012"), "fatal", "SqlError"],
  ["unique violation (class 23)", sqlState("23505"), "fatal", "SqlError"],
  ["not-null violation (class 23)", sqlState("23502"), "fatal", "SqlError"],
  ["invalid password (class 28)", sqlState("28P01"), "fatal", "SqlError"],
  ["insufficient privilege (class 42)", sqlState("42501"), "fatal", "SqlError"],
  ["syntax error (class 42)", sqlState("42601"), "fatal", "SqlError"],
  ["raise_exception (P0001)", sqlState("P0001"), "fatal", "SqlError"],
  ["kafkajs retriable", kafkaFailed({ retriable: true }), "retryable", "KafkaError"],
  ["kafkajs not retriable", kafkaFailed({ retriable: false }), "fatal", "KafkaError"],
  [
    "kafka broker unreachable",
    kafkaFailed(new KafkaJSConnectionError("Connection error: connect ECONNREFUSED")),
    "unavailable",
    "KafkaError",
    "kafka",
  ],
  [
    "kafkajs gave up retrying a connection",
    kafkaFailed(
      new KafkaJSNumberOfRetriesExceeded(new KafkaJSConnectionError("Connection timeout"), {
        retryCount: 5,
        retryTime: 5000,
      }),
    ),
    "unavailable",
    "KafkaError",
    "kafka",
  ],
  ["kafka socket refused", kafkaFailed(socket("ECONNREFUSED")), "unavailable", "KafkaError", "kafka"],
  [
    "redis down",
    new RedisError({ op: "eval", cause: new Error("connect ECONNREFUSED") }),
    "unavailable",
    "RedisError",
    "redis",
  ],
  [
    "redis gave up on a request while reconnecting",
    new RedisError({
      op: "eval",
      cause: new Error("Reached the max retries per request limit (which is 2)."),
    }),
    "unavailable",
    "RedisError",
    "redis",
  ],
  [
    "redis loading its data after a restart",
    new RedisError({ op: "eval", cause: new ReplyError("LOADING Redis is loading the dataset in memory") }),
    "unavailable",
    "RedisError",
    "redis",
  ],
  [
    "redis answered with an error of the command",
    new RedisError({ op: "eval", cause: new ReplyError("ERR Error running script") }),
    "retryable",
    "RedisError",
  ],
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
  // Every row as long as the longest: bun passes a shorter row's test a `done` callback in its place.
  const rows = table.map(
    ([name, error, kind, tag, dependency]) => [name, error, kind, tag, dependency ?? null] as const,
  )
  test.each(rows)("%s", (_, error, kind, tag, dependency) => {
    const verdict = classify(error)
    expect(verdict.kind).toBe(kind)
    expect(verdict.tag).toBe(tag)
    expect(verdict.kind === "unavailable" ? verdict.dependency : null).toBe(dependency)
    expect(verdict.message.length).toBeGreaterThan(0)
  })

  test("a SqlError's message names the SQLSTATE and its cause", () => {
    expect(classify(sqlState("23505")).message).toContain("[23505]")
    const refused = classify(acquireFailed(socket("ECONNREFUSED"))).message
    expect(refused).toContain("Failed to acquire connection")
    expect(refused).toContain("ECONNREFUSED")
    expect(classify(new SqlError({ message: "no cause" })).message).toBe("no cause")
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
