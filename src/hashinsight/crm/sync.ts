/**
 * The CRM sync's work for one account, inside the consumer's tenant transaction: recompute the
 * customer summary (account, contacts, portfolio figures as stored now), keep it in
 * `crm_summaries`, and record what was delivered to the CRM in `crm_deliveries` — `delivered` with
 * the attempt that succeeded, or `skipped` when no webhook is configured.
 */
import { SqlClient } from "@effect/sql"
import { Effect, Option, Schema } from "effect"
import { deliver } from "./webhook.ts"

export class UnknownCrmAccount extends Schema.TaggedError<UnknownCrmAccount>()("UnknownCrmAccount", {
  accountId: Schema.String,
}) {
  override get message() {
    return `no CRM account ${this.accountId} to summarise`
  }
}

/** The summary as JSON, built by the database from the rows as they are now; None without an account. */
const summaryOf = (accountId: string) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const [row] = yield* sql<{ summary: Record<string, unknown> }>`
      SELECT jsonb_build_object(
        'accountId', a.id, 'userId', a.user_id, 'name', a.name, 'tier', a.tier,
        'contacts', coalesce((
          SELECT jsonb_agg(jsonb_build_object('contactId', c.id, 'name', c.name, 'email', c.email)
                           ORDER BY c.id)
          FROM crm_contacts c WHERE c.account_id = a.id), '[]'::jsonb),
        'portfolio', (
          SELECT jsonb_build_object(
            'minerCount', p.miner_count, 'totalHashrateThs', p.total_hashrate_ths::float8,
            'dailyProfitUsd', p.daily_profit_usd::float8, 'treasuryBtc', p.treasury_btc::float8,
            'computedAt', p.computed_at)
          FROM portfolios p WHERE p.user_id = a.user_id)
      ) AS summary
      FROM crm_accounts a WHERE a.id = ${accountId}`
    return Option.fromNullable(row?.summary)
  })

export interface SyncEvent {
  readonly tenantId: string
  readonly accountId: string
  readonly eventId: string
  readonly eventType: string
  readonly attempt: number
}

export const syncAccount = Effect.fn("Crm.syncAccount")(function* (
  event: SyncEvent,
  webhook: Option.Option<URL>,
) {
  const sql = yield* SqlClient.SqlClient
  const summary = yield* summaryOf(event.accountId)
  if (Option.isNone(summary)) return yield* new UnknownCrmAccount({ accountId: event.accountId })
  yield* sql`
    INSERT INTO crm_summaries (tenant_id, account_id, summary)
    VALUES (${event.tenantId}, ${event.accountId}, ${JSON.stringify(summary.value)}::jsonb)
    ON CONFLICT (tenant_id, account_id) DO UPDATE SET summary = EXCLUDED.summary, computed_at = now()`
  const body = {
    eventId: event.eventId,
    eventType: event.eventType,
    tenantId: event.tenantId,
    accountId: event.accountId,
    summary: summary.value,
  }
  if (Option.isSome(webhook))
    yield* deliver(webhook.value, { idempotencyKey: event.eventId, eventType: event.eventType, body })
  yield* sql`
    INSERT INTO crm_deliveries ${sql.insert({
      tenant_id: event.tenantId,
      id: Bun.randomUUIDv7(),
      account_id: event.accountId,
      event_id: event.eventId,
      target_url: Option.isSome(webhook) ? webhook.value.toString() : null,
      payload: JSON.stringify(body),
      status: Option.isSome(webhook) ? "delivered" : "skipped",
      attempts: event.attempt,
      delivered_at: Option.isSome(webhook) ? new Date() : null,
    })}`
  return summary.value
})
