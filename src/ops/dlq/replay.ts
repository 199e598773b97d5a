/**
 * `dlq replay`: sends dead-lettered records back to the group that failed them.
 *
 * Protocol (the consumer runtime implements the other half, see `engine/consumer/dlq.ts`): the
 * entry's original record is re-produced to its original topic — same key, value and headers —
 * plus `x-replay-group` (only that group handles it; the others skip it) and `x-replay-dlq-id`
 * (the row the group marks `replayed`, or `failed` again, when it is done).
 *
 * Entries are claimed in chunks, each in one transaction: `FOR UPDATE SKIP LOCKED`, mark
 * `replaying` and count the attempt, produce, commit. A concurrent replay skips rows another one
 * holds and finds them `replaying` after it commits, so no entry is sent by two replays. A crash
 * before commit rolls the marks back and the entry is sent again later — the inbox makes that
 * second delivery a no-op. An entry that cannot be produced gets its previous status back and the
 * error in `last_replay_error`.
 */
import { SqlClient, type SqlError } from "@effect/sql"
import { Context, Duration, Effect, Either, Layer, type ParseResult, Schema } from "effect"
import { openTwinOf, replayDlqIdHeader, replayGroupHeader } from "../../engine/consumer/dlq.ts"
import { Kafka, KafkaError, type KafkaMessage, type KafkaProducer } from "../../platform/kafka.ts"
import { DlqEntry, entryColumns } from "./entry.ts"
import { type Selection, whereOf } from "./selection.ts"

/** Small enough that a chunk's row locks are held only briefly; large enough to batch round trips. */
const chunkSize = 100
const sendConcurrency = 16
const sendTimeout = Duration.seconds(30)

export interface ReplayOutcome {
  readonly id: number
  readonly consumerGroup: string
  readonly topic: string
  readonly eventId: string | null
  /** Undefined when the record was produced. */
  readonly error?: string
}

export interface ReplaySummary {
  readonly sent: number
  readonly failed: number
  readonly outcomes: ReadonlyArray<ReplayOutcome>
}

export type OnProgress = (done: number, total: number) => Effect.Effect<void>

export const replayMessage = (entry: DlqEntry): KafkaMessage => ({
  key: entry.key,
  value: entry.value,
  headers: {
    ...entry.headers,
    [replayGroupHeader]: entry.consumerGroup,
    [replayDlqIdHeader]: String(entry.id),
  },
})

const send = (producer: KafkaProducer, entry: DlqEntry) =>
  Effect.tryPromise({
    try: () => producer.send({ topic: entry.topic, messages: [replayMessage(entry)] }),
    catch: (cause) => new KafkaError({ op: "send", cause }),
  }).pipe(
    Effect.timeoutFail({
      duration: sendTimeout,
      onTimeout: () => new KafkaError({ op: "send", cause: `no ack within ${Duration.format(sendTimeout)}` }),
    }),
  )

type ReplayError = SqlError.SqlError | ParseResult.ParseError

export class DlqReplay extends Context.Tag("hashinsight/ops/DlqReplay")<
  DlqReplay,
  {
    /**
     * Replays up to `limit` entries of the selection (pass it through `replayable` first);
     * `total` is how many it expects to send, for progress only.
     */
    readonly run: (
      selection: Selection,
      limit: number,
      total: number,
      onProgress: OnProgress,
    ) => Effect.Effect<ReplaySummary, ReplayError>
  }
>() {
  static readonly layer = Layer.scoped(
    DlqReplay,
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const producer = yield* (yield* Kafka).producer()
      const decodeAll = Schema.decodeUnknown(Schema.Array(DlqEntry))

      const replayChunk = (selection: Selection, size: number) =>
        sql.withTransaction(
          Effect.gen(function* () {
            const entries = yield* decodeAll(
              yield* sql`SELECT ${sql.literal(entryColumns)} FROM event_dlq WHERE ${whereOf(sql, selection)}
                ORDER BY id LIMIT ${size} FOR UPDATE SKIP LOCKED`,
            )
            if (entries.length === 0) return []
            // A replayed entry sent again by id stays closed while a fresh failure's entry is open.
            yield* sql`UPDATE event_dlq
              SET replay_status = CASE WHEN replay_status = 'replayed' AND ${sql.literal(openTwinOf("event_dlq"))}
                  THEN 'replayed' ELSE 'replaying' END,
                replay_count = replay_count + 1, replayed_at = now()
              WHERE id IN ${sql.in(entries.map((e) => e.id))}`
            const sent = yield* Effect.forEach(entries, (e) => Effect.either(send(producer, e)), {
              concurrency: sendConcurrency,
            })
            return yield* Effect.forEach(entries, (entry, i) => {
              const outcome = {
                id: entry.id,
                consumerGroup: entry.consumerGroup,
                topic: entry.topic,
                eventId: entry.eventId,
              }
              const result = sent[i]!
              if (Either.isRight(result)) return Effect.succeed<ReplayOutcome>(outcome)
              const error = result.left.message
              return sql`UPDATE event_dlq SET replay_status = ${entry.replayStatus},
                  replayed_at = ${entry.replayedAt}, last_replay_error = ${error}
                WHERE id = ${entry.id}`.pipe(Effect.as<ReplayOutcome>({ ...outcome, error }))
            })
          }),
        )

      return DlqReplay.of({
        run: Effect.fn("DlqReplay.run")(function* (selection, limit, total, onProgress) {
          const outcomes: Array<ReplayOutcome> = []
          // Chunks walk the ids upwards: rows skipped because another replay holds them are that
          // replay's to send, and entries sent here are never picked twice (even with explicit ids).
          let afterId: number | undefined
          while (outcomes.length < limit) {
            const chunk = yield* replayChunk(
              { ...selection, afterId },
              Math.min(chunkSize, limit - outcomes.length),
            )
            if (chunk.length === 0) break
            outcomes.push(...chunk)
            afterId = chunk[chunk.length - 1]!.id
            yield* onProgress(outcomes.length, Math.max(total, outcomes.length))
          }
          const failed = outcomes.filter((o) => o.error !== undefined).length
          return { sent: outcomes.length - failed, failed, outcomes }
        }),
      })
    }),
  )
}
