import { describe, expect, test } from "bun:test"
import { type PartitionerArgs, Partitioners } from "kafkajs"
import { javaCompatiblePartitioner } from "../../src/platform/kafka-partitioner.ts"

const metadata = (partitions: number): PartitionerArgs["partitionMetadata"] =>
  Array.from({ length: partitions }, (_, partitionId) => ({
    partitionErrorCode: 0,
    partitionId,
    leader: partitionId % 3,
    replicas: [partitionId % 3],
    isr: [partitionId % 3],
  }))

const keys = [
  "",
  "a",
  "ab",
  "abc",
  "abcd",
  "miner-7",
  "user-42:portfolio",
  "héllo wörld ✓",
  "😀 emoji key",
  ...Array.from(
    { length: 5000 },
    (_, i) => `${crypto.randomUUID().slice(0, i % 37)}${String.fromCharCode(i % 3000)}`,
  ),
]

describe("Kafka partitioner", () => {
  test("places every key where kafkajs's Java-compatible default partitioner does, for 1 to 16 partitions", () => {
    const ours = javaCompatiblePartitioner()
    const reference = Partitioners.DefaultPartitioner()
    for (const partitions of [1, 2, 3, 4, 7, 8, 16]) {
      const partitionMetadata = metadata(partitions)
      const placed = (p: typeof ours, key: string | Buffer) =>
        p({ topic: "events.test", partitionMetadata, message: { key, value: "v" } })
      const mismatches = keys.filter(
        (key) =>
          placed(ours, key) !== placed(reference, key) ||
          placed(ours, Buffer.from(key)) !== placed(reference, key),
      )
      expect({ partitions, mismatches }).toEqual({ partitions, mismatches: [] })
    }
  })

  test("keeps an explicit partition", () => {
    const ours = javaCompatiblePartitioner()
    expect(
      ours({ topic: "t", partitionMetadata: metadata(4), message: { key: "k", value: "v", partition: 3 } }),
    ).toBe(3)
  })
})
