import { describe, expect, test } from "bun:test"
import { SqlClient } from "@effect/sql"
import { Duration, Effect } from "effect"
import { AssignerProtocol, type Cluster, type Logger } from "kafkajs"
import {
  goneMembers,
  identityData,
  type MemberReport,
  MemberReports,
  type SeenReport,
} from "../../src/engine/consumer/member-reports.ts"
import { memberAssigners } from "../../src/platform/kafka-assigner.ts"
import { Redis } from "../../src/platform/redis.ts"
import { effectTest } from "../support/effect.ts"
import { uniqueId } from "../support/ids.ts"

const report = (member: string, overrides: Partial<MemberReport> = {}): MemberReport => ({
  member,
  incarnation: `${member}-1`,
  startedAt: 1_000,
  state: "running",
  leader: false,
  waiting: [],
  partitions: [],
  ...overrides,
})

const seen = (r: MemberReport, ageMs: number): SeenReport => ({ ...r, ageMs })

const joined = (memberId: string, identity: Pick<MemberReport, "member" | "incarnation" | "startedAt">) => ({
  memberId,
  userData: identityData(identity),
})

describe("who is gone", () => {
  test("judged by the group's reports: a stale report of the same incarnation, or a newer incarnation of the same member", () => {
    const a = report("host-a:1")
    const b = report("host-b:2")
    const c = report("host-c:3")
    const d = report("host-d:4")
    const reports = [
      seen(a, 800),
      seen(b, 4_000),
      // c's process recreated its consumer: the report is its newer incarnation's.
      seen({ ...c, incarnation: "host-c:3-2", startedAt: 5_000 }, 300),
      // d's newer incarnation has joined but not reported yet: the report is the older one's.
      seen(d, 700),
    ]
    const members = [
      joined("m-a", a),
      joined("m-b", b),
      joined("m-c-old", c),
      joined("m-c-new", { ...c, incarnation: "host-c:3-2", startedAt: 5_000 }),
      joined("m-d-new", { ...d, incarnation: "host-d:4-2", startedAt: 6_000 }),
      joined("m-unknown", report("host-e:5")),
      { memberId: "m-older-build", userData: Buffer.alloc(0) },
    ]
    expect([...goneMembers(members, reports)].sort()).toEqual(["m-b", "m-c-old"])
  })
})

const cluster = (partitions: Record<string, number>) =>
  ({
    findTopicPartitionMetadata: (topic: string) =>
      Array.from({ length: partitions[topic] ?? 0 }, (_, partitionId) => ({ partitionId })),
  }) as unknown as Cluster

const assignerFor = (gone: ReadonlySet<string>, partitions: Record<string, number>) =>
  memberAssigners({ userData: () => Buffer.from("me"), gone: async () => gone, settleMs: 0 })[0]!({
    cluster: cluster(partitions),
    groupId: "g",
    logger: undefined as unknown as Logger,
  })

const assigned = async (assigner: ReturnType<typeof assignerFor>, memberIds: ReadonlyArray<string>) => {
  const metadata = assigner.protocol({ topics: ["t"] }).metadata
  const result = await assigner.assign({
    members: memberIds.map((memberId) => ({ memberId, memberMetadata: metadata })),
    topics: ["t", "u"],
  })
  return Object.fromEntries(
    result.map((r) => [r.memberId, AssignerProtocol.MemberAssignment.decode(r.memberAssignment)!.assignment]),
  )
}

describe("live round-robin assignment", () => {
  test("a gone member gets an empty assignment (but an entry); the others share every partition", async () => {
    const assigner = assignerFor(new Set(["m2"]), { t: 4, u: 1 })
    expect(
      AssignerProtocol.MemberMetadata.decode(assigner.protocol({ topics: ["t"] }).metadata),
    ).toMatchObject({
      topics: ["t"],
      userData: Buffer.from("me"),
    })
    expect(await assigned(assigner, ["m3", "m1", "m2"])).toEqual({
      m1: { t: [0, 2], u: [0] },
      m2: {},
      m3: { t: [1, 3] },
    })
  })

  test("when every member seems gone, all are assigned as usual", async () => {
    expect(await assigned(assignerFor(new Set(["m1", "m2"]), { t: 2, u: 0 }), ["m1", "m2"])).toEqual({
      m1: { t: [0] },
      m2: { t: [1] },
    })
  })
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

describe("member reports on a Redis that hangs", () => {
  effectTest(
    "a member's report removed in its finalizer while Redis answers nothing: the finalizer gives up after the store's 1 s",
    () =>
      Effect.gen(function* () {
        const reports = yield* MemberReports.make
        const redis = yield* Redis
        const group = uniqueId("hung-reports")
        yield* reports.write(group, report("host-a:1"))
        // CLIENT PAUSE: the server keeps every connection open and answers none of them for 5 s.
        yield* redis.use("pause", (c) => c.call("CLIENT", "PAUSE", "5000", "ALL"))
        const [took] = yield* Effect.timed(
          Effect.scoped(Effect.addFinalizer(() => reports.remove(group, "host-a:1"))),
        )
        expect(Duration.toMillis(took)).toBeLessThan(2_500)
        // Let the pause run out before the next test uses Redis.
        yield* Effect.sleep(Duration.millis(Math.max(0, 5_500 - Duration.toMillis(took))))
      }),
  )
})
