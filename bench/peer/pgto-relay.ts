/**
 * The peer's outbox relay as one of its users would write it: `pg-transactional-outbox`'s
 * replication or polling listener with a message handler that publishes each message to Kafka
 * with kafkajs and awaits the ack (same record format as ours: topic `events.<aggregateType>`,
 * key = aggregate id, value = payload JSON, headers id/eventType). Segment = aggregate id, so it
 * keeps per-aggregate order like a Kafka key does, while different aggregates run concurrently.
 *
 *   bun bench/peer/pgto-relay.ts wal|poll SLOT     (env DATABASE_URL, KAFKA_BROKERS)
 *
 * SIGTERM shuts down; PGTO_DEBUG=1 turns the library's own trace logging on.
 */
import { Kafka, logLevel, Partitioners } from "kafkajs"
import {
  createReplicationSegmentMutexConcurrencyController,
  type GeneralMessageHandler,
  getDefaultLogger,
  getDisabledLogger,
  initializePollingMessageListener,
  initializeReplicationMessageListener,
} from "pg-transactional-outbox"
import { pgtoNextMessages, pgtoPublication, pgtoTable } from "./pgto-schema.ts"

const [mode, slot] = process.argv.slice(2)
if ((mode !== "wal" && mode !== "poll") || !slot) {
  console.error("usage: bun bench/peer/pgto-relay.ts wal|poll SLOT")
  process.exit(2)
}

const kafka = new Kafka({
  clientId: "pgto-bench",
  brokers: process.env.KAFKA_BROKERS!.split(","),
  logLevel: logLevel.NOTHING,
})
const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner, idempotent: false })
await producer.connect()

const publish: GeneralMessageHandler = {
  handle: async (message) => {
    await producer.send({
      topic: `events.${message.aggregateType}`,
      acks: -1,
      messages: [
        {
          key: message.aggregateId,
          value: JSON.stringify(message.payload),
          headers: { id: message.id, eventType: message.messageType },
        },
      ],
    })
  },
}

const dbListenerConfig = { connectionString: process.env.DATABASE_URL! }
const settings = {
  ...{ dbSchema: pgtoTable.schema, dbTable: pgtoTable.table },
  // The README's outbox settings: no max-attempts / poisonous-message bookkeeping on the outbox side.
  enableMaxAttemptsProtection: false,
  enablePoisonousMessageProtection: false,
  // No cleanup runs during a measurement.
  messageCleanupIntervalInMs: 0,
}
// Its logger is pino; silenced so log volume is not part of the measurement (ours runs at LOG_LEVEL=WARN).
const logger = process.env.PGTO_DEBUG ? getDefaultLogger("pgto") : getDisabledLogger()
if (process.env.PGTO_DEBUG) logger.level = "trace"

const [shutdown] =
  mode === "wal"
    ? initializeReplicationMessageListener(
        {
          outboxOrInbox: "outbox",
          dbListenerConfig,
          settings: { ...settings, dbPublication: pgtoPublication, dbReplicationSlot: slot },
        },
        publish,
        logger,
        { concurrencyStrategy: createReplicationSegmentMutexConcurrencyController() },
      )
    : initializePollingMessageListener(
        {
          outboxOrInbox: "outbox",
          dbListenerConfig,
          settings: {
            ...settings,
            nextMessagesFunctionName: pgtoNextMessages,
            nextMessagesBatchSize: Number(process.env.PGTO_BATCH ?? 100),
            nextMessagesPollingIntervalInMs: Number(process.env.PGTO_POLL_MS ?? 100),
          },
        },
        publish,
        logger,
      )

const stop = async () => {
  await shutdown()
  await producer.disconnect()
  process.exit(0)
}
process.once("SIGTERM", stop)
process.once("SIGINT", stop)
