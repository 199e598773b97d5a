/**
 * What each member of a consumer group says about itself, every second: running or waiting on a
 * dependency (since when, with what error), its partitions, which incarnation of its Kafka consumer
 * it is. The API's health shows it, in another process than the member.
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
    const bounded = <A, E>(self: Effect.Effect<A, E>) => Effect.timeout(self, storeTimeout)

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
