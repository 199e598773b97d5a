/** Human-readable output of the DLQ commands: plain-text tables and an entry's detail view. */
import { table } from "../../platform/table.ts"
import { type DlqEntry, decodedValue } from "./entry.ts"
import type { GroupRetryPolicy } from "./policies.ts"
import type { ReplaySummary } from "./replay.ts"
import type { DlqStatsReport } from "./stats.ts"

export const formatAge = (seconds: number): string => {
  const s = Math.max(0, Math.floor(seconds))
  const units: ReadonlyArray<readonly [string, number]> = [
    ["d", 86400],
    ["h", 3600],
    ["m", 60],
    ["s", 1],
  ]
  const parts: Array<string> = []
  let rest = s
  for (const [unit, size] of units) {
    if (rest >= size || (parts.length === 0 && size === 1)) {
      parts.push(`${Math.floor(rest / size)}${unit}`)
      rest %= size
    }
    if (parts.length === 2) break
  }
  return parts.join(" ")
}

const percent = (rate: number | null) => (rate === null ? "n/a" : `${(rate * 100).toFixed(2)}%`)

const truncate = (text: string, width: number) =>
  text.length > width ? `${text.slice(0, width - 1)}…` : text

export const formatStats = (s: DlqStatsReport, policies: ReadonlyArray<GroupRetryPolicy>): string => {
  const t = s.totals
  const lines = [
    `DLQ entries: ${t.total} (pending ${t.pending}, replaying ${t.replaying}, replayed ${t.replayed}, failed again ${t.failed}) from ${t.occurrences} failed deliveries`,
    `Oldest pending: ${s.oldestPendingSeconds === null ? "none" : formatAge(s.oldestPendingSeconds)}`,
    `Last ${s.windowHours} h: ${s.window.dlq} dead-lettered / ${s.window.processed} processed = DLQ rate ${percent(s.window.rate)}`,
  ]
  if (s.breakdown.length > 0) {
    lines.push(
      "",
      table(s.breakdown, [
        ["TOPIC", (r) => r.topic],
        ["GROUP", (r) => r.consumerGroup],
        ["ERROR", (r) => r.errorTag],
        ["TOTAL", (r) => r.total],
        ["PENDING", (r) => r.pending],
        ["REPLAYING", (r) => r.replaying],
        ["REPLAYED", (r) => r.replayed],
        ["FAILED", (r) => r.failed],
        ["OCCURRENCES", (r) => r.occurrences],
      ]),
    )
  }
  if (s.windowByGroup.length > 0) {
    lines.push(
      "",
      table(s.windowByGroup, [
        ["GROUP", (r) => r.consumerGroup],
        [`DLQ ${s.windowHours}H`, (r) => r.dlq],
        [`PROCESSED ${s.windowHours}H`, (r) => r.processed],
        ["RATE", (r) => percent(r.rate)],
      ]),
    )
  }
  if (policies.length > 0) {
    lines.push(
      "",
      table(policies, [
        ["GROUP", (p) => p.consumerGroup],
        ["ATTEMPTS", (p) => p.maxAttempts],
        ["DELAYS (ms, ±jitter)", (p) => `${p.delaysMs.join(", ")} (±${Math.round(p.jitter * 100)}%)`],
      ]),
    )
  }
  return lines.join("\n")
}

export const formatList = (entries: ReadonlyArray<DlqEntry>, limit: number): string => {
  if (entries.length === 0) return "No DLQ entries match."
  const out = table(entries, [
    ["ID", (e) => e.id],
    ["FAILED AT", (e) => e.failedAt.toISOString().replace("T", " ").slice(0, 19)],
    ["TOPIC", (e) => e.topic],
    ["GROUP", (e) => e.consumerGroup],
    ["TYPE", (e) => e.eventType ?? ""],
    ["ERROR", (e) => e.errorTag],
    ["ATT", (e) => e.attempts],
    ["COUNT", (e) => e.occurrences],
    ["STATUS", (e) => e.replayStatus],
    ["REPLAYS", (e) => e.replayCount],
    ["MESSAGE", (e) => truncate(e.errorMessage.replaceAll("\n", " "), 60)],
  ])
  const last = entries[entries.length - 1]!
  return entries.length === limit ? `${out}\n\nMore may follow: add --after ${last.id}` : out
}

/** The whole entry as JSON-friendly data, value decoded: what `show --json` prints. */
export const entryDetail = (e: DlqEntry) => ({ ...e, value: decodedValue(e), rawValue: e.value })

export const formatShow = (e: DlqEntry): string => {
  const field = (name: string, value: unknown) =>
    `${`${name}:`.padEnd(19)}${value === null || value === undefined ? "-" : value}`
  const indent = (text: string) =>
    text
      .split("\n")
      .map((l) => `  ${l}`)
      .join("\n")
  return [
    field("id", e.id),
    field("event id", e.eventId),
    field("event type", e.eventType),
    field("tenant", e.tenantId),
    field("consumer group", e.consumerGroup),
    field("record", `${e.topic} [partition ${e.partition}] @ offset ${e.offset}`),
    field("key", e.key),
    field("failed at", e.failedAt.toISOString()),
    field("occurrences", e.occurrences),
    field("last failed at", e.lastFailedAt.toISOString()),
    field("attempts", e.attempts),
    field("error", `${e.errorTag}: ${e.errorMessage}`),
    field("replay status", e.replayStatus),
    field("replay count", e.replayCount),
    field("replayed at", e.replayedAt?.toISOString()),
    field("last replay error", e.lastReplayError),
    "headers:",
    indent(JSON.stringify(e.headers, null, 2)),
    "value:",
    indent(JSON.stringify(decodedValue(e), null, 2)),
    `replay history (${e.history.length}):`,
    indent(e.history.length === 0 ? "none" : JSON.stringify(e.history, null, 2)),
  ].join("\n")
}

export const formatReplaySummary = (s: ReplaySummary): string => {
  const lines = [`Replayed ${s.sent} entr${s.sent === 1 ? "y" : "ies"}; ${s.failed} could not be sent.`]
  const failed = s.outcomes.filter((o) => o.error !== undefined)
  if (failed.length > 0) {
    lines.push(
      "",
      table(failed, [
        ["ID", (o) => o.id],
        ["TOPIC", (o) => o.topic],
        ["GROUP", (o) => o.consumerGroup],
        ["ERROR", (o) => truncate(o.error ?? "", 80)],
      ]),
    )
  }
  return lines.join("\n")
}

export const formatDryRun = (entries: ReadonlyArray<DlqEntry>): string =>
  entries.length === 0
    ? "Dry run: nothing to replay."
    : `Dry run: would replay ${entries.length} entr${entries.length === 1 ? "y" : "ies"} (nothing changed):\n\n${table(
        entries,
        [
          ["ID", (e) => e.id],
          ["TOPIC", (e) => e.topic],
          ["GROUP", (e) => e.consumerGroup],
          ["TYPE", (e) => e.eventType ?? ""],
          ["ERROR", (e) => e.errorTag],
          ["STATUS", (e) => e.replayStatus],
        ],
      )}`
