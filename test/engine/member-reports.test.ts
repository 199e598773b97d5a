import { describe, expect } from "bun:test"
import { SqlClient } from "@effect/sql"
import { Effect } from "effect"
import { type MemberReport, MemberReports } from "../../src/engine/consumer/member-reports.ts"
import { Redis } from "../../src/platform/redis.ts"
import { effectTest } from "../support/effect.ts"
import { uniqueId } from "../support/ids.ts"

const report = (member: string, overrides: Partial<MemberReport> = {}): MemberReport => ({
  member,
  incarnation: `${member}-1`,
  startedAt: 1_000,
  state: "running",
  waiting: [],
  partitions: [],
  ...overrides,
})

describe("member reports", () => {
  effectTest(
    "written to Redis and the database, read back with their age, the fresher store's winning; removed",
    () =>
      Effect.gen(function* () {
        const reports = yield* MemberReports.make
        const group = uniqueId("reports-group")
        const mine = report("host-a:1", { partitions: ["events.x/0"] })
        yield* reports.write(group, mine)
        const [read] = yield* reports.read(group)
        expect(read).toMatchObject(mine)
        expect(read!.ageMs).toBeGreaterThanOrEqual(0)
        expect(read!.ageMs).toBeLessThan(1_000)

        // The database's copy is older than Redis's: Redis's is the one read.
        const sql = yield* SqlClient.SqlClient
        yield* sql`UPDATE consumer_members SET report = ${JSON.stringify({ ...mine, state: "joining" })}::jsonb,
        reported_at = now() - interval '3 seconds' WHERE consumer_group = ${group}`
        expect((yield* reports.read(group)).map((r) => r.state)).toEqual(["running"])
        // Redis lost it (a restart without persistence): the database's is read.
        const redis = yield* Redis
        yield* redis.use("test", (c) => c.del(`consumer:members:{${group}}`))
        const fromDatabase = yield* reports.read(group)
        expect(fromDatabase.map((r) => r.state)).toEqual(["joining"])
        expect(fromDatabase[0]!.ageMs).toBeGreaterThanOrEqual(3_000)

        yield* reports.remove(group, mine.member)
        expect(yield* reports.read(group)).toEqual([])
      }),
  )
})
