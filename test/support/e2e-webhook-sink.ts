/**
 * A CRM webhook to deliver to in tests: a local Bun server that records every request and answers
 * with the next status queued for the account in the body (200 when none is queued), so a test
 * scripts "503, 503, then 200" or "422 until fixed" per account.
 */
import { Effect } from "effect"

export interface SinkRequest {
  readonly accountId: string
  readonly idempotencyKey: string | null
  readonly eventType: string | null
  readonly status: number
  readonly body: {
    readonly accountId: string
    readonly eventId: string
    readonly summary: {
      readonly name: string
      readonly tier: string
      readonly contacts: ReadonlyArray<{ readonly email: string }>
    }
  }
}

export const webhookSink = Effect.acquireRelease(
  Effect.sync(() => {
    const requests: Array<SinkRequest> = []
    const queued = new Map<string, Array<number>>()
    const server = Bun.serve({
      port: 0,
      hostname: "127.0.0.1",
      fetch: async (request) => {
        const body = (await request.json()) as SinkRequest["body"]
        const status = queued.get(body.accountId)?.shift() ?? 200
        requests.push({
          accountId: body.accountId,
          idempotencyKey: request.headers.get("idempotency-key"),
          eventType: request.headers.get("x-hashinsight-event"),
          status,
          body,
        })
        return new Response(status < 300 ? "ok" : `refused with ${status}`, { status })
      },
    })
    return {
      url: new URL(`http://127.0.0.1:${server.port}/crm/webhook`),
      requests,
      /** The statuses the next deliveries for `accountId` get, in order. */
      answer: (accountId: string, statuses: ReadonlyArray<number>) => {
        queued.set(accountId, [...statuses])
      },
      server,
    }
  }),
  (sink) => Effect.promise(() => sink.server.stop(true)),
)
