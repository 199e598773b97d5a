/**
 * `crm-sync-group`: on every account or contact change, the account's customer summary is
 * recomputed and delivered to the CRM webhook. A CRM that is down or overloaded (5xx, timeouts) is
 * retried by the policy; one that refuses the delivery (4xx) will refuse it again, so the event goes
 * straight to the DLQ, to be replayed with `bun run dlq replay` once the CRM side is fixed. Both
 * event types are keyed by account, so one account's changes arrive in order.
 */
import { type ConfigError, Effect, type Option } from "effect"
import { defineConsumer, type EventMeta, on } from "../../engine/consumer/definition.ts"
import { Fatal, Retryable } from "../../engine/consumer/errors.ts"
import { syncAccount } from "../crm/sync.ts"
import { webhookUrlFromEnv } from "../crm/webhook.ts"
import { crmTopic } from "../topics.ts"
import { consumerGroups } from "./groups.ts"
import type { PlatformServices } from "./services.ts"

export const crmRetryPolicy = { maxAttempts: 5, baseDelayMs: 250, factor: 2, capMs: 5_000, jitter: 0.2 }

/** `webhookUrl` is read for every event: the environment's `CRM_WEBHOOK_URL` unless a test names one. */
export const makeCrmSyncConsumer = (
  webhookUrl: Effect.Effect<Option.Option<URL>, ConfigError.ConfigError>,
) => {
  const sync = (accountId: string, meta: EventMeta) =>
    Effect.flatMap(webhookUrl, (url) =>
      syncAccount(
        {
          tenantId: meta.tenantId,
          accountId,
          eventId: meta.eventId,
          eventType: meta.eventType,
          attempt: meta.attempt,
        },
        url,
      ),
    ).pipe(
      Effect.catchTag("WebhookFailed", (e) =>
        Effect.fail(
          e.permanent
            ? new Fatal({ message: e.message, cause: e })
            : new Retryable({ message: e.message, cause: e }),
        ),
      ),
      Effect.catchTag("UnknownCrmAccount", (e) => Effect.fail(new Fatal({ message: e.message, cause: e }))),
    )

  return defineConsumer<PlatformServices>({
    name: "crm-sync",
    group: consumerGroups["crm-sync"],
    retry: crmRetryPolicy,
    subscriptions: [
      on(crmTopic, {
        AccountUpserted: (p, meta) => sync(p.accountId, meta),
        ContactUpserted: (p, meta) => sync(p.accountId, meta),
      }),
    ],
  })
}

export const crmSyncConsumer = makeCrmSyncConsumer(webhookUrlFromEnv)
