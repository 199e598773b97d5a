import { Effect, Schedule } from "effect"
import type { Producer } from "kafkajs"
import { KafkaError } from "../../platform/kafka.ts"
import type { OutboxRecord } from "../record.ts"
import { topicMessagesOf } from "./records.ts"

/**
 * A broker outage must stall the relay, never drop events: sends are retried for as long as it
 * takes, backing off to one attempt every 5 s. The stall shows up as relay lag.
 */
const retrySchedule = Schedule.exponential("100 millis", 2).pipe(
  Schedule.union(Schedule.spaced("5 seconds")),
  Schedule.jittered,
)

const sendOnce = (producer: Producer, records: ReadonlyArray<OutboxRecord>) =>
  Effect.tryPromise({
    try: () => producer.sendBatch({ topicMessages: topicMessagesOf(records), acks: -1 }),
    catch: (cause) => new KafkaError({ op: "sendBatch", cause }),
  })

/**
 * Sends `records` in order and, once Kafka acknowledged every one of them, runs `confirm` (the WAL
 * ack or the `published_at` mark) — never before. The first attempt and `confirm` are
 * uninterruptible, so a shutdown lets an in-flight batch finish and be confirmed; a batch that is
 * still failing may be interrupted, and the next relay sends its events again.
 */
export const deliver = <E, R>(
  producer: Producer,
  records: ReadonlyArray<OutboxRecord>,
  confirm: Effect.Effect<void, E, R>,
) =>
  Effect.uninterruptibleMask((restore) =>
    (records.length === 0 ? Effect.void : Effect.asVoid(sendOnce(producer, records))).pipe(
      Effect.catchAll((first) =>
        restore(
          Effect.logWarning(`kafka send of ${records.length} events failed, retrying: ${first.message}`).pipe(
            Effect.zipRight(
              sendOnce(producer, records).pipe(
                Effect.tapError((e) => Effect.logWarning(`kafka send still failing: ${e.message}`)),
                Effect.retry(retrySchedule),
                // the schedule never ends: only interruption leaves this loop
                Effect.orDie,
              ),
            ),
          ),
        ),
      ),
      Effect.zipRight(confirm),
    ),
  ).pipe(Effect.withSpan("Relay.deliver", { attributes: { events: records.length } }))
