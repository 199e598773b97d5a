/**
 * What each member of a consumer group says about itself, every second: running or waiting on a
 * dependency (since when, with what error), its partitions, which incarnation of its Kafka consumer
 * it is, whether it leads the group. The API's health shows it, the group's leader reads it when it
 * assigns partitions (kafka-assigner.ts), a member about to join reads it to time its join; all of
 * them other processes than the member.
 *
 * Every report goes to two stores, Redis (a hash per group, a field per member) and PostgreSQL
 * (`consumer_members`), each best effort, and readers take the fresher of the two: the state a member
 * is in while one store is down is exactly what must still be readable, from the other. Ages are
 * measured on the store's own clock (Redis `TIME`, PostgreSQL `now()`), so members and readers on
 * hosts whose clocks disagree still agree on whether a report is stale. A member that stops cleanly
 * removes its reports; one that died leaves a report that goes stale, then is forgotten after a minute.
 */
import { SqlClient } from "@effect/sql"
import { Context, Duration, Effect, Layer, Option } from "effect"
import { Redis } from "../../platform/redis.ts"
import type { Waiting } from "./outage.ts"

export interface MemberReport {
  /** `host:pid`: one process's member of the group. */
  readonly member: string
  /** This member's current Kafka consumer: a new one after a crash is a new incarnation. */
  readonly incarnation: string
  /** Epoch ms (the member's clock) when this incarnation started. */
  readonly startedAt: number
  readonly state: "joining" | "running" | "waiting"
  /** Whether its consumer is the group's leader (the one that assigns partitions). */
  readonly leader: boolean
  readonly waiting: ReadonlyArray<Waiting>
  /** `topic/partition` of the current assignment. */
  readonly partitions: ReadonlyArray<string>
}

export interface SeenReport extends MemberReport {
  /** How long ago the member wrote it, by the store's clock. */
  readonly ageMs: number
}

/** How often a member reports. */
export const reportEvery = Duration.seconds(1)
/** A report this old means its member stopped reporting: dead, or its process stalled. */
export const staleAfterMs = 5_000
/** Reports older than this are forgotten (their members are gone). */
const forgetAfterMs = 60_000

const storeTimeout = Duration.seconds(1)

const redisKey = (group: string) => `consumer:members:{${group}}`

/** Writes a report stamped with the server's time, and drops the group's reports nobody renewed. */
const writeScript = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('HSET', KEYS[1], ARGV[1], now .. ' ' .. ARGV[2])
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  local at = tonumber(string.match(all[i + 1], '^%d+'))
  if at == nil or now - at > tonumber(ARGV[3]) then redis.call('HDEL', KEYS[1], all[i]) end
end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1`

const readScript = `
local t = redis.call('TIME')
return { tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000), redis.call('HGETALL', KEYS[1]) }`

const parse = (text: unknown): MemberReport | undefined => {
  try {
    const report = typeof text === "string" ? JSON.parse(text) : text
    return typeof report?.member === "string" && typeof report?.incarnation === "string" ? report : undefined
  } catch {
    return undefined
  }
}

export class MemberReports extends Context.Tag("hashinsight/engine/MemberReports")<
  MemberReports,
  {
    /** Best effort, to both stores; never fails. */
    readonly write: (group: string, report: MemberReport) => Effect.Effect<void>
    readonly remove: (group: string, member: string) => Effect.Effect<void>
    /** The group's reports from whichever stores answer, the fresher per member; never fails. */
    readonly read: (group: string) => Effect.Effect<ReadonlyArray<SeenReport>>
  }
>() {
  static readonly make = Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const redis = yield* Redis
    // `remove` runs in a member's finalizer, uninterruptible: without `interruptible` the time limit
    // could not cut short a store that never answers, and the member's shutdown waited on it.
    const bounded = <A, E>(self: Effect.Effect<A, E>) =>
      Effect.timeout(Effect.interruptible(self), storeTimeout)

    const write = (group: string, report: MemberReport) => {
      const json = JSON.stringify(report)
      return Effect.all(
        [
          Effect.ignore(
            bounded(
              redis.use("members.write", (c) =>
                c.eval(writeScript, 1, redisKey(group), report.member, json, forgetAfterMs),
              ),
            ),
          ),
          Effect.ignore(
            bounded(sql`WITH forgotten AS (
                DELETE FROM consumer_members
                WHERE consumer_group = ${group}
                  AND reported_at < now() - make_interval(secs => ${forgetAfterMs / 1000}))
              INSERT INTO consumer_members (consumer_group, member, report)
              VALUES (${group}, ${report.member}, ${json}::jsonb)
              ON CONFLICT (consumer_group, member)
              DO UPDATE SET report = excluded.report, reported_at = now()`),
          ),
        ],
        { concurrency: "unbounded", discard: true },
      )
    }

    const remove = (group: string, member: string) =>
      Effect.all(
        [
          Effect.ignore(bounded(redis.use("members.remove", (c) => c.hdel(redisKey(group), member)))),
          Effect.ignore(
            bounded(sql`DELETE FROM consumer_members WHERE consumer_group = ${group} AND member = ${member}`),
          ),
        ],
        { concurrency: "unbounded", discard: true },
      )

    const fromRedis = (group: string) =>
      Effect.map(
        redis.use(
          "members.read",
          (c) => c.eval(readScript, 1, redisKey(group)) as Promise<[number, string[]]>,
        ),
        ([now, flat]) => {
          const seen: Array<SeenReport> = []
          for (let i = 0; i + 1 < flat.length; i += 2) {
            const text = flat[i + 1]!
            const space = text.indexOf(" ")
            const report = parse(text.slice(space + 1))
            if (report) seen.push({ ...report, ageMs: now - Number(text.slice(0, space)) })
          }
          return seen
        },
      )

    const fromDatabase = (group: string) =>
      Effect.map(
        sql<{ report: unknown; age_ms: number }>`
          SELECT report, (extract(epoch FROM now() - reported_at) * 1000)::float8 AS age_ms
          FROM consumer_members WHERE consumer_group = ${group}`,
        (rows) =>
          rows.flatMap((row) => {
            const report = parse(row.report)
            return report ? [{ ...report, ageMs: row.age_ms }] : []
          }),
      )

    const read = (group: string) =>
      Effect.map(
        Effect.all([Effect.option(bounded(fromRedis(group))), Effect.option(bounded(fromDatabase(group)))], {
          concurrency: "unbounded",
        }),
        (stores) => {
          const freshest = new Map<string, SeenReport>()
          for (const report of stores.flatMap((s) => Option.getOrElse(s, () => []))) {
            const known = freshest.get(report.member)
            if (report.ageMs < forgetAfterMs && (!known || report.ageMs < known.ageMs))
              freshest.set(report.member, report)
          }
          return [...freshest.values()].sort((a, b) => (a.member < b.member ? -1 : 1))
        },
      )

    return MemberReports.of({ write, remove, read })
  })

  static readonly layer = Layer.effect(MemberReports, MemberReports.make)
}

/** Who a member's Kafka consumer is, as it tells its group's leader (kafka-assigner.ts). */
export type Identity = Pick<MemberReport, "member" | "incarnation" | "startedAt">

export const identityData = (identity: Identity): Buffer => Buffer.from(JSON.stringify(identity))

/**
 * A report this old means, for assigning partitions, that its member is gone. Lower than
 * `staleAfterMs`: wrongly judged gone, a live member goes without partitions until the next
 * rebalance; wrongly judged alive, a dead one holds its partitions until its session ends and a
 * whole rebalance more (two on the mock).
 */
const goneAfterMs = 3_000

/**
 * The joined members that are gone, judged by the group's reports: a member whose own incarnation's
 * report is old, or whose member has since started a newer incarnation (it crashed and its
 * consumer was recreated, or its process restarted under the same name). A member that told nothing
 * readable, or has no report yet, counts as alive.
 */
export const goneMembers = (
  joined: ReadonlyArray<{ readonly memberId: string; readonly userData: Buffer }>,
  seen: ReadonlyArray<SeenReport>,
): ReadonlySet<string> => {
  const byMember = new Map(seen.map((r) => [r.member, r]))
  const gone = new Set<string>()
  for (const { memberId, userData } of joined) {
    let identity: Identity | undefined
    try {
      identity = JSON.parse(userData.toString("utf8"))
    } catch {
      continue
    }
    const report = identity && byMember.get(identity.member)
    if (!report) continue
    const isGone =
      report.incarnation === identity!.incarnation
        ? report.ageMs > goneAfterMs
        : report.startedAt > identity!.startedAt
    if (isGone) gone.add(memberId)
  }
  return gone
}

/**
 * Waits, before a member joins, until members that died are out of the assignment its join starts.
 * A dead member stays in the group until its session ends; ending then, it makes the group rebalance
 * again, and on the librdkafka mock, which keeps every join phase open for the session less a
 * second, that costs a second join phase — a whole one more when it ends during a sync, or when the
 * dead one is the leader, whom the mock elects (its oldest member) dead or not and who never hands
 * out the assignment. Sessions end on the mock's one-second tick, so a join at least `reportEvery`
 * plus 2.5 s after a dead member's last report starts a join phase that outlasts its session: one
 * rebalance, without it. A member is seen to live by its next report, due within `reportEvery`: a
 * member joining a group whose reports are all that recent waits up to that long to tell. On a
 * broker, whose join phase ends when a dead member's session does, the rest of the wait costs nothing.
 */
export const untilTheDeadAreOut = (reports: MemberReports["Type"], group: string, self: string) =>
  Effect.gen(function* () {
    const everyMs = Duration.toMillis(reportEvery)
    const overdue = everyMs + 500
    const joinAfter = everyMs + 2_500
    // Members quiet for longer are out in time anyway.
    let others = (yield* reports.read(group)).filter((r) => r.member !== self && r.ageMs < joinAfter)
    // None overdue yet (a restart quicker than a report): see which report again.
    if (others.length > 0 && others.every((r) => r.ageMs <= overdue)) {
      const waited = overdue - Math.min(...others.map((r) => r.ageMs))
      yield* Effect.sleep(Duration.millis(waited))
      const now = new Map((yield* reports.read(group)).map((r) => [r.member, r]))
      others = others.map((r) => ({ ...r, ageMs: now.get(r.member)?.ageMs ?? r.ageMs + waited }))
    }
    const quiet = others.filter((r) => r.ageMs > overdue)
    const rest = Math.max(0, ...quiet.map((r) => joinAfter - r.ageMs))
    if (rest > 0) {
      yield* Effect.logInfo(
        `${group}: ${quiet.map((r) => r.member).join(", ")} stopped reporting; joining in ${rest} ms`,
      )
      yield* Effect.sleep(Duration.millis(rest))
    }
  })
