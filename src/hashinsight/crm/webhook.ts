/**
 * Delivery of a CRM change to the configured webhook (`CRM_WEBHOOK_URL`). The event id goes along
 * as `Idempotency-Key`: a delivery whose transaction then fails to commit is sent again on retry,
 * and the receiver can tell. What a failure means is decided here, once: 4xx other than 408/429
 * will fail the same way again (permanent); 5xx, 408, 429, timeouts and network errors may not.
 */
import { Config, Duration, Effect, Schema } from "effect"

/** Unset = no CRM to deliver to: summaries are still kept, deliveries recorded as skipped. */
export const webhookUrlFromEnv = Config.option(Config.url("CRM_WEBHOOK_URL"))

export const deliveryTimeout = Duration.seconds(5)

export class WebhookFailed extends Schema.TaggedError<WebhookFailed>()("WebhookFailed", {
  url: Schema.String,
  /** The HTTP status, or undefined when no response came. */
  status: Schema.optional(Schema.Number),
  permanent: Schema.Boolean,
  reason: Schema.String,
}) {
  override get message() {
    return `CRM webhook ${this.url} ${this.status === undefined ? "unreachable" : `answered ${this.status}`}: ${this.reason}`
  }
}

const isPermanent = (status: number) => status >= 400 && status < 500 && status !== 408 && status !== 429

export interface WebhookDelivery {
  readonly idempotencyKey: string
  readonly eventType: string
  readonly body: unknown
}

export const deliver = Effect.fn("CrmWebhook.deliver")(function* (url: URL, delivery: WebhookDelivery) {
  const target = url.toString()
  const response = yield* Effect.tryPromise({
    try: (signal) =>
      fetch(target, {
        method: "POST",
        headers: {
          "Content-Type": "application/json",
          "Idempotency-Key": delivery.idempotencyKey,
          "X-HashInsight-Event": delivery.eventType,
        },
        body: JSON.stringify(delivery.body),
        signal: AbortSignal.any([signal, AbortSignal.timeout(Duration.toMillis(deliveryTimeout))]),
      }),
    catch: (cause) => new WebhookFailed({ url: target, permanent: false, reason: String(cause) }),
  })
  // Read the body either way, so the connection can be reused; keep a little of it for the DLQ.
  const text = yield* Effect.promise(() => response.text().catch(() => ""))
  if (response.ok) return response.status
  return yield* new WebhookFailed({
    url: target,
    status: response.status,
    permanent: isPermanent(response.status),
    reason: text.slice(0, 200) || response.statusText,
  })
})
