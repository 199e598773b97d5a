/**
 * `dlq stats`: the backlog by topic, consumer group and error tag with its replay states and the
 * failed deliveries its entries stand for (a record delivered again is one entry, its repeats
 * counted on it), the age of the oldest pending entry, and the DLQ rate over a window: entries
 * dead-lettered ÷ (events processed + entries dead-lettered), the engine's `dlqRate`.
 */
import { SqlClient, type SqlError } from "@effect/sql"
import { Context, Effect, Layer } from "effect"
import { dlqRate, dlqWindow } from "../../engine/consumer/dlq.ts"

export interface StatusCounts {
  readonly total: number
  readonly pending: number
  readonly replaying: number
  readonly replayed: number
  readonly failed: number
  /** Failed deliveries: each entry's first one and its repeats. */
  readonly occurrences: number
}

export interface BreakdownRow extends StatusCounts {
  readonly topic: string
  readonly consumerGroup: string
  readonly errorTag: string
}

export interface GroupRate {
  readonly consumerGroup: string
  readonly dlq: number
  readonly processed: number
  /** dlq / (processed + dlq); null when neither happened in the window. */
  readonly rate: number | null
}

export interface DlqStatsReport {
  readonly windowHours: number
  readonly totals: StatusCounts
  readonly oldestPendingSeconds: number | null
  readonly breakdown: ReadonlyArray<BreakdownRow>
  readonly window: Omit<GroupRate, "consumerGroup">
  readonly windowByGroup: ReadonlyArray<GroupRate>
}

const sumCounts = (rows: ReadonlyArray<StatusCounts>): StatusCounts =>
  rows.reduce(
    (a, r) => ({
      total: a.total + r.total,
      pending: a.pending + r.pending,
      replaying: a.replaying + r.replaying,
      replayed: a.replayed + r.replayed,
      failed: a.failed + r.failed,
      occurrences: a.occurrences + r.occurrences,
    }),
    { total: 0, pending: 0, replaying: 0, replayed: 0, failed: 0, occurrences: 0 },
  )

export class DlqStats extends Context.Tag("hashinsight/ops/DlqStats")<
  DlqStats,
  { readonly report: (windowHours: number) => Effect.Effect<DlqStatsReport, SqlError.SqlError> }
>() {
  static readonly layer = Layer.effect(
    DlqStats,
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      return DlqStats.of({
        report: Effect.fn("DlqStats.report")(function* (windowHours) {
          const breakdown = yield* sql<BreakdownRow>`SELECT topic, consumer_group AS "consumerGroup",
              error_tag AS "errorTag", count(*)::int AS total,
              (count(*) FILTER (WHERE replay_status = 'pending'))::int AS pending,
              (count(*) FILTER (WHERE replay_status = 'replaying'))::int AS replaying,
              (count(*) FILTER (WHERE replay_status = 'replayed'))::int AS replayed,
              (count(*) FILTER (WHERE replay_status = 'failed'))::int AS failed,
              sum(occurrences)::int AS occurrences
            FROM event_dlq GROUP BY 1, 2, 3 ORDER BY total DESC, 1, 2, 3`
          const oldest = yield* sql<{ seconds: number | null }>`SELECT
              extract(epoch FROM now() - min(failed_at))::float8 AS seconds
            FROM event_dlq WHERE replay_status = 'pending'`
          const byGroup = yield* dlqWindow(windowHours).pipe(Effect.provideService(SqlClient.SqlClient, sql))
          const windowByGroup = byGroup.map((g) => ({ ...g, rate: dlqRate(g.dlq, g.processed) }))
          const dlq = windowByGroup.reduce((n, g) => n + g.dlq, 0)
          const processed = windowByGroup.reduce((n, g) => n + g.processed, 0)
          return {
            windowHours,
            totals: sumCounts(breakdown),
            oldestPendingSeconds: oldest[0]?.seconds ?? null,
            breakdown,
            window: { dlq, processed, rate: dlqRate(dlq, processed) },
            windowByGroup,
          }
        }),
      })
    }),
  )
}
