/**
 * docs/engine.md's example is docs/examples/quickstart.ts, quoted whole: the quote is checked
 * against the file, and the file is run on the real stack — in a migrated database of its own, so
 * its relay sees only this test's outbox.
 */
import { describe, expect, test } from "bun:test"
import { readFileSync } from "node:fs"
import { join } from "node:path"
import { SqlClient } from "@effect/sql"
import { Effect, Layer, Redacted } from "effect"
import {
  createTables,
  loyaltyConsumer,
  orderTopic,
  placeOrder,
  quickstart,
} from "../../docs/examples/quickstart.ts"
import { toKafkaMessage } from "../../src/engine/index.ts"
import { Kafka } from "../../src/platform/kafka.ts"
import { projectRoot } from "../../src/platform/project-root.ts"
import { eventually } from "../support/consumer-fixtures.ts"
import { effectTest } from "../support/effect.ts"
import { relayDatabase } from "../support/relay-kit.ts"

const examplePath = "docs/examples/quickstart.ts"

/** The fenced code block that follows the line naming the example in docs/engine.md. */
const quotedExample = () => {
  const markdown = readFileSync(join(projectRoot, "docs/engine.md"), "utf8")
  const at = markdown.indexOf(`<!-- example: ${examplePath} -->`)
  if (at < 0) return undefined
  return /```ts\n([\s\S]*?)```/.exec(markdown.slice(at))?.[1]
}

/** Whether the group has committed every record of the topic (all partitions up to their end). */
const caughtUp = (group: string, topic: string) =>
  Effect.gen(function* () {
    const admin = yield* (yield* Kafka).admin
    const ends = yield* Effect.promise(() => admin.fetchTopicOffsets(topic))
    const [committed] = yield* Effect.promise(() => admin.fetchOffsets({ groupId: group, topics: [topic] }))
    const at = new Map((committed?.partitions ?? []).map((p) => [p.partition, Number(p.offset)]))
    return ends.every((p) => Number(p.high) === 0 || (at.get(p.partition) ?? -1) >= Number(p.high))
  }).pipe(Effect.scoped)

describe("docs/engine.md example", () => {
  test("docs/engine.md quotes docs/examples/quickstart.ts exactly", () => {
    expect(quotedExample()).toBe(readFileSync(join(projectRoot, examplePath), "utf8"))
  })

  effectTest(
    "the order's event, appended in its business transaction, is relayed and applied once, also when Kafka delivers it twice",
    () =>
      Effect.gen(function* () {
        const db = yield* relayDatabase
        yield* Effect.gen(function* () {
          const sql = yield* SqlClient.SqlClient
          yield* createTables
          yield* Layer.build(quickstart(Redacted.make(db.url)))
          const tenantId = crypto.randomUUID()
          const orderId = crypto.randomUUID()
          const eventId = yield* placeOrder(tenantId, { orderId, customerId: "alice", totalCents: 12_345 })

          const points = sql<{ points: number }>`
            SELECT points FROM loyalty_points WHERE tenant_id = ${tenantId} AND customer_id = 'alice'`
          yield* eventually(Effect.map(points, (rows) => rows.length === 1))
          expect((yield* points)[0]!.points).toBe(123)

          // The relay's at-least-once made visible: the same record sent again, as a relay restarted
          // before its acknowledgement would.
          const [row] = yield* sql<{ payload: string }>`
            SELECT payload::text FROM event_outbox WHERE id = ${eventId}`
          const again = toKafkaMessage({
            id: eventId,
            aggregatetype: orderTopic.aggregatetype,
            aggregateid: orderId,
            type: "OrderPlaced",
            payload: row!.payload,
            tenantId,
            traceparent: null,
            eventVersion: 1,
          })
          const producer = yield* (yield* Kafka).producer()
          yield* Effect.promise(() => producer.send({ topic: orderTopic.name, messages: [again] }))
          yield* eventually(caughtUp(loyaltyConsumer.group, orderTopic.name))

          expect((yield* points)[0]!.points).toBe(123)
          const inbox = yield* sql<{ n: number }>`
            SELECT count(*)::int AS n FROM event_inbox
            WHERE consumer_group = ${loyaltyConsumer.group} AND event_id = ${eventId}`
          expect(inbox[0]!.n).toBe(1)
          const fences = yield* sql<{ n: number }>`
            SELECT count(*)::int AS n FROM lock_fences WHERE lock_key = 'lock:customer:alice'`
          expect(fences[0]!.n).toBe(1)
        }).pipe(Effect.provide(db.layer))
      }),
    { timeout: 90_000 },
  )
})
