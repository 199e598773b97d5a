/**
 * A stand-in for the audit's self-test, not a relay anyone should write: it marks outbox rows
 * published first and sends them to Kafka after, so a SIGKILL between the two loses the batch — the
 * rows count as delivered and no relay sends them again. `bun test/chaos/stand-ins/relay-acking-early.ts`;
 * prints `marked N` before each send.
 */
import { Kafka, logLevel } from "kafkajs"
import Pg from "pg"
import { toKafkaMessage } from "../../../src/engine/record.ts"
import { topicNameOf } from "../../../src/engine/topic.ts"

const pool = new Pg.Pool({ connectionString: process.env.DATABASE_URL, max: 1 })
const kafka = new Kafka({ brokers: process.env.KAFKA_BROKERS!.split(","), logLevel: logLevel.NOTHING })
const producer = kafka.producer()
await producer.connect()
for (;;) {
  const { rows } = await pool.query<{
    id: string
    aggregatetype: string
    aggregateid: string
    type: string
    payload: unknown
    tenant_id: string
    event_version: number
  }>(`UPDATE event_outbox SET published_at = now()
      WHERE id IN (SELECT id FROM event_outbox WHERE published_at IS NULL ORDER BY seq LIMIT 10)
      RETURNING id, aggregatetype, aggregateid, type, payload, tenant_id, event_version`)
  if (rows.length === 0) {
    await Bun.sleep(20)
    continue
  }
  console.log(`marked ${rows.length}`)
  // The send is on its way, and the rows already count as delivered.
  await Bun.sleep(300)
  for (const r of rows)
    await producer.send({
      topic: topicNameOf(r.aggregatetype),
      messages: [
        toKafkaMessage({
          id: r.id,
          aggregatetype: r.aggregatetype,
          aggregateid: r.aggregateid,
          type: r.type,
          payload: JSON.stringify(r.payload),
          tenantId: r.tenant_id,
          traceparent: null,
          eventVersion: r.event_version,
        }),
      ],
    })
}
