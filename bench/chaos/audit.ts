/**
 * The audit: what happened, read from the database and Kafka rather than from any log, for one
 * scenario's tenant. Every committed write reached Kafka; each consumer group applied every event
 * it handles once (an inbox row or a DLQ entry; the portfolio ledger, which is not idempotent, shows
 * an event applied twice as two rows); each user's treasury movements were applied, and first
 * delivered, in the order they were written; no write executed twice for its key; every 5xx was a
 * 503 with Retry-After; the DLQ holds exactly the poison the scenario injected, one entry each.
 */
import { SqlClient } from "@effect/sql"
import { Effect } from "effect"
import type { Admin } from "kafkajs"
import { consumerGroups, consumerNames, consumers } from "../../src/hashinsight/consumers/index.ts"
import { topics } from "../../src/hashinsight/topics.ts"
import type { SinkRequest } from "../../test/support/e2e-webhook-sink.ts"
import type { Received } from "../../test/support/relay-kit.ts"
import type { LoadReport } from "./load.ts"

/** Which event types each group handles, by aggregate type: the events it owes an inbox row or a DLQ entry. */
export const handled = consumerNames.flatMap((name) =>
  (consumers[name]?.subscriptions ?? []).flatMap((s) =>
    Object.keys(s.handlers).map((type) => ({
      group: consumerGroups[name],
      aggregatetype: s.topic.aggregatetype,
      type,
    })),
  ),
)

export const topicNames = topics.map((t) => t.name)

const handledValues = handled.map((h) => `('${h.group}', '${h.aggregatetype}', '${h.type}')`).join(", ")

/**
 * Events of the tenant (committed by `before`, epoch ms, when given) that some group handles and has
 * neither applied nor dead-lettered.
 */
export const unapplied = (tenantId: string, before?: number) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql<{ n: number }>`
      SELECT count(*)::int AS n
      FROM event_outbox o
      JOIN (VALUES ${sql.unsafe(handledValues)}) AS h(grp, agg, typ) ON h.agg = o.aggregatetype AND h.typ = o.type
      WHERE o.tenant_id = ${tenantId}
        ${before === undefined ? sql`` : sql`AND o.created_at <= to_timestamp(${before / 1000})`}
        AND NOT EXISTS (SELECT 1 FROM event_inbox i WHERE i.consumer_group = h.grp AND i.event_id = o.id)
        AND NOT EXISTS (SELECT 1 FROM event_dlq d WHERE d.consumer_group = h.grp AND d.event_id = o.id)`.pipe(
      Effect.map(([row]) => row?.n ?? 0),
    ),
  )

/** The tenant's committed events. */
export const outboxIds = (tenantId: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.map(sql<{ id: string }>`SELECT id::text FROM event_outbox WHERE tenant_id = ${tenantId}`, (rows) =>
      rows.map((r) => r.id),
    ),
  )

/** Per group, records in its topics it has not committed past (all topics, every tenant). */
export const lagOf = (admin: Admin) =>
  Effect.tryPromise(async () => {
    const ends = new Map<string, Map<number, number>>()
    for (const topic of topicNames) {
      const offsets = await admin.fetchTopicOffsets(topic).catch(() => [])
      ends.set(topic, new Map(offsets.map((o) => [o.partition, Number(o.high)])))
    }
    const lag: Record<string, number> = {}
    for (const group of new Set(handled.map((h) => h.group))) {
      const subscribed = [
        ...new Set(handled.filter((h) => h.group === group).map((h) => `events.${h.aggregatetype}`)),
      ]
      const committed = await admin.fetchOffsets({ groupId: group, topics: subscribed })
      let behind = 0
      for (const t of committed)
        for (const p of t.partitions) {
          const end = ends.get(t.topic)?.get(p.partition) ?? 0
          behind += Math.max(0, end - Math.max(0, Number(p.offset)))
        }
      lag[group] = behind
    }
    return lag
  })

export interface Poison {
  readonly id: string
  readonly groups: ReadonlyArray<string>
}

export interface AuditInput {
  readonly tenantId: string
  readonly load: LoadReport
  /** Every record read from the platform's topics so far (all tenants; duplicates kept). */
  readonly received: ReadonlyArray<Received>
  readonly webhook: ReadonlyArray<SinkRequest>
  readonly poison: ReadonlyArray<Poison>
}

export interface AuditResult {
  readonly writesAccepted: number
  readonly eventsCommitted: number
  readonly eventsDelivered: number
  /** Records in Kafka beyond each event's first, plus CRM webhook deliveries beyond the first: allowed. */
  readonly duplicateDeliveries: number
  readonly duplicateEffects: number
  readonly lost: number
  readonly orderViolations: number
  readonly doubleExecutions: number
  /** 5xx answers that were not a 503 with Retry-After. */
  readonly badServerErrors: number
  readonly serverErrors: number
  /** DLQ entries beyond the poison, poison without its entry, and entries repeated for one (group, event). */
  readonly dlqWrong: number
  readonly dlqEntries: number
  /** What went wrong, one line each. */
  readonly problems: ReadonlyArray<string>
}

const count = <K>(keys: Iterable<K>) => {
  const m = new Map<K, number>()
  for (const k of keys) m.set(k, (m.get(k) ?? 0) + 1)
  return m
}

/** Entries whose `at` is below one applied before them, per sequence. */
const inversions = (sequences: Map<string, Array<number>>) => {
  let n = 0
  for (const ats of sequences.values()) {
    let max = Number.NEGATIVE_INFINITY
    for (const at of ats) {
      if (at < max) n++
      max = Math.max(max, at)
    }
  }
  return n
}

export const audit = (input: AuditInput) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const { tenantId, load } = input
    const problems: Array<string> = []
    const say = (n: number, what: string) => {
      if (n > 0) problems.push(`${n} ${what}`)
      return n
    }

    // Writes: each accepted one executed once, none executed twice (by its marker).
    const accepted = load.outcomes.filter((o) => o.accepted).map((o) => o.write)
    const treasuryRuns = new Map(
      (yield* sql<{ at: string; n: number }>`
        SELECT (extract(epoch FROM at) * 1000)::bigint::text AS at, count(*)::int AS n
        FROM treasury_transactions WHERE tenant_id = ${tenantId} GROUP BY 1`).map((r) => [r.at, r.n]),
    )
    const minerRuns = new Map(
      (yield* sql<{ site: string; n: number }>`
        SELECT site, count(*)::int AS n FROM miners WHERE tenant_id = ${tenantId} GROUP BY 1`).map((r) => [
        r.site,
        r.n,
      ]),
    )
    const accounts = new Set(
      (yield* sql<{ id: string }>`SELECT id FROM crm_accounts WHERE tenant_id = ${tenantId}`).map(
        (r) => r.id,
      ),
    )
    const runsOf = (w: (typeof accepted)[number]) =>
      w.kind === "treasury"
        ? (treasuryRuns.get(String(Date.parse(w.marker))) ?? 0)
        : w.kind === "miner"
          ? (minerRuns.get(w.marker) ?? 0)
          : accounts.has(w.marker)
            ? 1
            : 0
    const doubleExecutions = say(
      [...treasuryRuns.values(), ...minerRuns.values()].reduce((s, n) => s + Math.max(0, n - 1), 0),
      "writes executed more than once for their key",
    )
    const writesLost = say(
      accepted.filter((w) => runsOf(w) === 0).length,
      "accepted writes not in the database",
    )
    say(
      load.outcomes.filter((o) => !o.accepted).length,
      "writes never accepted (refused, or retried for 2 minutes)",
    )
    say(load.resent - load.resentReplayed, "writes sent again with their key that were not replayed")

    // Kafka: every committed event of the tenant there, in order per aggregate.
    const outbox = yield* sql<{ id: string; aggregatetype: string; type: string }>`
      SELECT id::text, aggregatetype, type FROM event_outbox WHERE tenant_id = ${tenantId}`
    const mine = input.received.filter((r) => r.headers.tenantId === tenantId)
    const inKafka = count(mine.map((r) => r.headers.id!))
    const notInKafka = say(outbox.filter((e) => !inKafka.has(e.id)).length, "committed events not in Kafka")
    const webhookCounts = count(input.webhook.map((r) => r.body.eventId))
    const ids = new Set(outbox.map((e) => e.id))
    const duplicateDeliveries =
      [...inKafka].reduce((s, [id, n]) => s + (ids.has(id) ? n - 1 : 0), 0) +
      [...webhookCounts].reduce((s, [id, n]) => s + (ids.has(id) ? n - 1 : 0), 0)
    const firstSeen = new Set<string>()
    const kafkaOrder = new Map<string, Array<number>>()
    for (const r of [...mine]
      .filter((r) => r.topic === "events.treasury")
      .sort((a, b) => a.partition - b.partition || Number(BigInt(a.offset) - BigInt(b.offset)))) {
      if (firstSeen.has(r.headers.id!)) continue
      firstSeen.add(r.headers.id!)
      const at = Date.parse((JSON.parse(r.value) as { at: string }).at)
      kafkaOrder.set(r.key, [...(kafkaOrder.get(r.key) ?? []), at])
    }
    const kafkaInversions = say(inversions(kafkaOrder), "treasury events first delivered out of write order")

    // Groups: every handled event applied or dead-lettered.
    const groupsMissing = say(
      yield* unapplied(tenantId),
      "(group, event) pairs neither applied nor dead-lettered",
    )

    // The ledger: one row per treasury event, sums as written, in write order per user.
    const ledger = yield* sql<{ event_id: string; user_id: string; at: string }>`
      SELECT l.event_id::text, l.user_id, (extract(epoch FROM t.at) * 1000)::bigint::text AS at
      FROM portfolio_ledger l
      LEFT JOIN treasury_transactions t ON t.tenant_id = l.tenant_id AND t.id = l.transaction_id
      WHERE l.tenant_id = ${tenantId} ORDER BY l.position`
    const ledgerCounts = count(ledger.map((l) => l.event_id))
    const duplicateEffects = say(
      [...ledgerCounts.values()].reduce((s, n) => s + n - 1, 0),
      "treasury events applied to the ledger more than once",
    )
    const treasuryEvents = outbox.filter((e) => e.aggregatetype === "treasury")
    const unledgered = say(
      treasuryEvents.filter((e) => !ledgerCounts.has(e.id)).length,
      "treasury events never applied to the ledger",
    )
    const sums = yield* sql<{ user_id: string; ledger: string; written: string }>`
      SELECT user_id, sum(l)::text AS ledger, sum(w)::text AS written FROM (
        SELECT user_id, btc_delta AS l, 0 AS w FROM portfolio_ledger WHERE tenant_id = ${tenantId}
        UNION ALL
        SELECT user_id, 0, btc_delta FROM treasury_transactions WHERE tenant_id = ${tenantId}) s
      GROUP BY user_id`
    say(
      sums.filter((s) => Number(s.ledger) !== Number(s.written)).length,
      "users whose ledger sum differs from their writes",
    )
    const ledgerOrder = new Map<string, Array<number>>()
    for (const l of ledger) ledgerOrder.set(l.user_id, [...(ledgerOrder.get(l.user_id) ?? []), Number(l.at)])
    const ledgerInversions = say(inversions(ledgerOrder), "treasury events applied out of write order")

    // The DLQ: exactly the poison, one open entry per (group, event).
    const dlq = yield* sql<{ consumer_group: string; event_id: string | null }>`
      SELECT consumer_group, event_id::text FROM event_dlq WHERE tenant_id = ${tenantId}`
    const expected = new Set(input.poison.flatMap((p) => p.groups.map((g) => `${g}/${p.id}`)))
    const entries = count(dlq.map((d) => `${d.consumer_group}/${d.event_id}`))
    const dlqWrong =
      say(
        [...entries.keys()].filter((k) => !expected.has(k)).length,
        "DLQ entries that are not injected poison",
      ) +
      say([...expected].filter((k) => !entries.has(k)).length, "poison records without their DLQ entry") +
      say(
        [...entries.values()].reduce((s, n) => s + n - 1, 0),
        "repeated DLQ entries for one (group, event)",
      )

    const badServerErrors = say(
      load.serverErrors.filter((e) => e.status !== 503 || !e.retryAfter).length,
      `5xx answers other than 503 with Retry-After (${[
        ...new Set(
          load.serverErrors
            .filter((e) => e.status !== 503 || !e.retryAfter)
            .map((e) => `${e.status}: ${e.detail}`),
        ),
      ]
        .slice(0, 3)
        .join(" | ")})`,
    )

    return {
      writesAccepted: accepted.length,
      eventsCommitted: outbox.length,
      eventsDelivered: outbox.filter((e) => inKafka.has(e.id)).length,
      duplicateDeliveries,
      duplicateEffects,
      lost: writesLost + notInKafka + groupsMissing + unledgered,
      orderViolations: kafkaInversions + ledgerInversions,
      doubleExecutions,
      badServerErrors,
      serverErrors: load.serverErrors.length,
      dlqWrong,
      dlqEntries: dlq.length,
      problems,
    } satisfies AuditResult
  })
