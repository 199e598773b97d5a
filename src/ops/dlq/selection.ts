/**
 * Which entries an operator command means: the flags of `list` and `replay` as one value, turned
 * into a SQL condition in one place so `list`, `replay --dry-run` and `replay` agree exactly.
 */
import type { Statement } from "@effect/sql"
import type { ReplayStatus } from "./entry.ts"

export interface Selection {
  readonly topic?: string | undefined
  readonly group?: string | undefined
  /** Only entries that failed within the last N hours. */
  readonly hours?: number | undefined
  readonly statuses?: ReadonlyArray<ReplayStatus> | undefined
  readonly ids?: ReadonlyArray<number> | undefined
  /** Keyset paging: only ids greater than this. */
  readonly afterId?: number | undefined
}

/** What `replay` picks: explicit ids as given, else everything not yet replayed or in flight. */
export const replayable = (s: Selection): Selection =>
  s.ids && s.ids.length > 0 ? s : { ...s, statuses: ["pending", "failed"] }

export const whereOf = (sql: Statement.Constructor, s: Selection): Statement.Fragment => {
  const clauses: Array<Statement.Fragment> = []
  if (s.topic !== undefined) clauses.push(sql`topic = ${s.topic}`)
  if (s.group !== undefined) clauses.push(sql`consumer_group = ${s.group}`)
  if (s.hours !== undefined) clauses.push(sql`failed_at >= now() - make_interval(secs => ${s.hours * 3600})`)
  if (s.statuses && s.statuses.length > 0) clauses.push(sql`replay_status IN ${sql.in(s.statuses)}`)
  if (s.ids && s.ids.length > 0) clauses.push(sql`id IN ${sql.in(s.ids)}`)
  if (s.afterId !== undefined) clauses.push(sql`id > ${s.afterId}`)
  return sql.and(clauses)
}
