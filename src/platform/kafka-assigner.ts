/**
 * kafkajs's round-robin partition assignment, except for members the caller knows are gone. A
 * SIGKILLed member stays in its group until its session times out, and an assignment made before
 * then hands it partitions that nobody processes until the next rebalance — several seconds more on
 * a broker, a whole extra rebalance on the librdkafka mock, which holds every rebalance's join
 * phase open for nearly the session timeout. kafkajs has no static membership and no way to send a
 * LeaveGroup for a predecessor's member id, so the leader does the next best thing: every member
 * tells the leader who it is (`userData`, sent with each JoinGroup), the caller's `gone` judges the
 * joined members by that, and the gone ones get an empty assignment. When every member seems gone,
 * all are assigned as usual: a judgement that excludes everyone is the judge's failure.
 *
 * Every member gets an entry, the gone ones empty: the mock completes a sync only once it holds an
 * assignment for each member, so a member left out would stall it until the sync times out. The
 * leader also waits `settleMs` before it returns: on the mock, a follower's SyncGroup that arrives
 * after the leader's is refused (INVALID_REQUEST), which costs that member a new consumer and the
 * group another rebalance. Plain round robin is offered second, so members of an older build (which
 * offer only that) and of this one can share a group during a rolling upgrade.
 */
import {
  AssignerProtocol,
  type GroupMemberAssignment,
  type PartitionAssigner,
  PartitionAssigners,
} from "kafkajs"

export interface LiveAssignment {
  /** What this member tells the leader about itself. */
  readonly userData: () => Buffer
  /** The member ids, of those joined (with what they told), that get no partitions. */
  readonly gone: (
    members: ReadonlyArray<{ readonly memberId: string; readonly userData: Buffer }>,
  ) => Promise<ReadonlySet<string>>
  readonly settleMs: number
}

const version = 1

const liveRoundRobin =
  (live: LiveAssignment): PartitionAssigner =>
  ({ cluster }) => ({
    name: "LiveRoundRobinAssigner",
    version,
    protocol: ({ topics }) => ({
      name: "LiveRoundRobinAssigner",
      metadata: AssignerProtocol.MemberMetadata.encode({ version, topics, userData: live.userData() }),
    }),
    assign: async ({ members, topics }): Promise<Array<GroupMemberAssignment>> => {
      const told = members.map(({ memberId, memberMetadata }) => ({
        memberId,
        userData: AssignerProtocol.MemberMetadata.decode(memberMetadata)?.userData ?? Buffer.alloc(0),
      }))
      const gone = await live.gone(told).catch(() => new Set<string>())
      const sorted = members.map((m) => m.memberId).sort()
      const assignees = sorted.some((id) => !gone.has(id)) ? sorted.filter((id) => !gone.has(id)) : sorted
      const assignment = new Map<string, Record<string, Array<number>>>(sorted.map((id) => [id, {}]))
      const partitions = topics.flatMap((topic) =>
        cluster.findTopicPartitionMetadata(topic).map((m) => ({ topic, partition: m.partitionId })),
      )
      partitions.forEach(({ topic, partition }, i) => {
        const mine = assignment.get(assignees[i % assignees.length]!)!
        mine[topic] = [...(mine[topic] ?? []), partition]
      })
      await new Promise((resolve) => setTimeout(resolve, live.settleMs))
      return sorted.map((memberId) => ({
        memberId,
        memberAssignment: AssignerProtocol.MemberAssignment.encode({
          version,
          assignment: assignment.get(memberId)!,
          userData: Buffer.alloc(0),
        }),
      }))
    },
  })

/** The assigners a member offers, in order of preference. */
export const memberAssigners = (live: LiveAssignment): Array<PartitionAssigner> => [
  liveRoundRobin(live),
  PartitionAssigners.roundRobin,
]
