/**
 * Kafka's Java default partitioner for keyed records — `toPositive(murmur2(utf8(key))) % partitions`,
 * the placement Debezium's records get — in 32-bit integer arithmetic. kafkajs's own implementation
 * emulates 64-bit longs: ~1.3 µs per key against ~0.14 µs here. Keyless records go to kafkajs's
 * default partitioner.
 */
import { type ICustomPartitioner, Partitioners } from "kafkajs"

const seed = 0x9747b28c
const m = 0x5bd1e995

/** Kafka's `Utils.murmur2` (Java int arithmetic). */
const murmur2 = (data: Uint8Array): number => {
  const length = data.length
  let h = seed ^ length
  const length4 = length >>> 2
  for (let i = 0; i < length4; i++) {
    const i4 = i * 4
    let k = data[i4]! | (data[i4 + 1]! << 8) | (data[i4 + 2]! << 16) | (data[i4 + 3]! << 24)
    k = Math.imul(k, m)
    k ^= k >>> 24
    k = Math.imul(k, m)
    h = Math.imul(h, m) ^ k
  }
  // The last 1–3 bytes, mixed as Java's fall-through switch does.
  const tail = length & ~3
  const rest = length & 3
  if (rest > 0) {
    if (rest === 3) h ^= data[tail + 2]! << 16
    if (rest >= 2) h ^= data[tail + 1]! << 8
    h ^= data[tail]!
    h = Math.imul(h, m)
  }
  h ^= h >>> 13
  h = Math.imul(h, m)
  h ^= h >>> 15
  return h | 0
}

export const javaCompatiblePartitioner: ICustomPartitioner = () => {
  const keyless = Partitioners.DefaultPartitioner()
  return (args) => {
    const { partitionMetadata, message } = args
    if (message.partition !== null && message.partition !== undefined) return message.partition
    if (message.key === null || message.key === undefined) return keyless(args)
    const bytes = Buffer.isBuffer(message.key) ? message.key : Buffer.from(String(message.key))
    return (murmur2(bytes) & 0x7fffffff) % partitionMetadata.length
  }
}
