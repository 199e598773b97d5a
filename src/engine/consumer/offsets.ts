/**
 * The offsets a member has finished, committed to Kafka on a timer rather than after every batch.
 * kafkajs 2.2.4 with `autoCommit` commits after EVERY batch (its interval and threshold only apply
 * to `eachMessage`), which is one OffsetCommit round trip per batch on the hot path. Committing
 * later never loses an effect: the inbox turns a redelivered event into a skipped duplicate; it
 * only bounds how much is redelivered after a crash or a rebalance.
 *
 * Only partitions of the current assignment are committed, so a partition that moved to another
 * member is never rewound by our stale position.
 */
import { Effect } from "effect"
import { type KafkaConsumer, KafkaError } from "../../platform/kafka.ts"

interface Position {
  readonly topic: string
  readonly partition: number
  /** The next offset to read: the finished record's offset + 1, as Kafka commits it. */
  readonly offset: string
}

export const makeOffsetTracker = (consumer: KafkaConsumer) => {
  const finished = new Map<string, Position>()
  const committed = new Map<string, string>()
  let assigned: Set<string> | undefined
  const keyOf = (topic: string, partition: number) => `${topic}\u0000${partition}`

  consumer.on(consumer.events.GROUP_JOIN, ({ payload }) => {
    assigned = new Set(
      Object.entries(payload.memberAssignment).flatMap(([topic, partitions]) =>
        partitions.map((p) => keyOf(topic, p)),
      ),
    )
    for (const key of finished.keys()) {
      if (!assigned.has(key)) {
        finished.delete(key)
        committed.delete(key)
      }
    }
  })

  /** Records that `offset` of the partition is done (effects committed or dead-lettered). */
  const finish = (topic: string, partition: number, offset: string) => {
    const key = keyOf(topic, partition)
    if (assigned && !assigned.has(key)) return
    finished.set(key, { topic, partition, offset: (BigInt(offset) + 1n).toString() })
  }

  /** Commits what finished since the last commit; nothing to do costs no round trip. */
  const commit = Effect.suspend(() => {
    const due = [...finished.entries()].filter(([key, p]) => committed.get(key) !== p.offset)
    if (due.length === 0) return Effect.void
    return Effect.tryPromise({
      try: () => consumer.commitOffsets(due.map(([, p]) => p)),
      catch: (cause) => new KafkaError({ op: "commitOffsets", cause }),
    }).pipe(
      Effect.tap(() =>
        Effect.sync(() => {
          for (const [key, p] of due) committed.set(key, p.offset)
        }),
      ),
    )
  })

  return { finish, commit }
}
