/**
 * A stand-in for the audit's self-test, not a consumer anyone should write: it applies the portfolio
 * ledger's effect for every `events.treasury` record with no inbox, and commits no offsets (as if its
 * commits were rare) — so, SIGKILLed and started again, it applies again everything it applied. `bun test/chaos/stand-ins/ledger-without-inbox.ts <group>`; prints `applied` per event.
 */
import { Kafka, logLevel } from "kafkajs"
import Pg from "pg"
import { treasuryTopic } from "../../../src/hashinsight/topics.ts"

const group = process.argv[2]
if (!group) throw new Error("usage: ledger-without-inbox.ts <group>")
const pool = new Pg.Pool({ connectionString: process.env.DATABASE_URL, max: 2 })
const kafka = new Kafka({ brokers: process.env.KAFKA_BROKERS!.split(","), logLevel: logLevel.NOTHING })
const consumer = kafka.consumer({
  groupId: group,
  sessionTimeout: 6000,
  heartbeatInterval: 500,
  maxWaitTimeInMs: 100,
})
await consumer.connect()
await consumer.subscribe({ topic: treasuryTopic.name })
await consumer.run({
  autoCommit: false,
  eachMessage: async ({ message }) => {
    const p = JSON.parse(message.value!.toString()) as {
      userId: string
      transactionId: string
      kind: string
      btc: number
    }
    await pool.query(
      "INSERT INTO portfolio_ledger (tenant_id, event_id, user_id, transaction_id, btc_delta) VALUES ($1, $2, $3, $4, $5)",
      [
        message.headers!.tenantId!.toString(),
        message.headers!.id!.toString(),
        p.userId,
        p.transactionId,
        p.kind === "withdrawal" || p.kind === "sale" ? -p.btc : p.btc,
      ],
    )
    console.log("applied")
  },
})
