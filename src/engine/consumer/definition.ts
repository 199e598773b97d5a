/**
 * A consumer is declared, not hand-wired: its group, the topics it reads with one handler per event
 * type (decoded payload + metadata in, Effect out), a retry policy value, an optional lock key and
 * its concurrency. The runtime (`runtime.ts`) supplies inbox, retries, locks, DLQ and metrics.
 */
import type { SqlClient } from "@effect/sql"
import type { Effect } from "effect"
import type { EventType, PayloadOf, Topic } from "../topic.ts"
import { defaultRetryPolicy, type RetryPolicy } from "./retry.ts"

/** What a handler knows about the event besides its payload. */
export interface EventMeta {
  readonly eventId: string
  readonly eventType: string
  readonly tenantId: string
  readonly traceparent: string | undefined
  /** The version the record was written as; the payload has been upcast to the latest. */
  readonly eventVersion: number
  readonly topic: string
  readonly partition: number
  readonly offset: string
  readonly key: string | undefined
  /** 1 on the first attempt. */
  readonly attempt: number
  /** The lock held while the handler runs, with its fencing token (checked by the runtime at commit). */
  readonly lock: { readonly key: string; readonly token: number } | undefined
}

/**
 * A handler runs inside the event's tenant transaction (RLS applies); its database effects commit
 * together with the inbox row. It may fail with `Retryable`/`Fatal` or any error `classify` knows.
 */
export type Handler<P, R> = (
  payload: P,
  meta: EventMeta,
) => Effect.Effect<void, unknown, R | SqlClient.SqlClient>

export type Handlers<T extends Topic, R> = { readonly [K in EventType<T>]?: Handler<PayloadOf<T, K>, R> }

type AnyPayload<T extends Topic> = { [K in EventType<T>]: PayloadOf<T, K> }[EventType<T>]

export interface Subscription<R> {
  readonly topic: Topic
  readonly handlers: Readonly<Record<string, Handler<any, R> | undefined>>
  readonly lockKey: ((payload: any, meta: EventMeta) => string | undefined) | undefined
}

/** Subscribes to a topic with handlers for the event types of interest; other types are skipped. */
export const on = <T extends Topic, R = never>(
  topic: T,
  handlers: Handlers<T, R>,
  options: {
    /** e.g. `(p) => \`lock:user:${p.userId}:portfolio\``; undefined = no lock for that event. */
    readonly lockKey?: (payload: AnyPayload<T>, meta: EventMeta) => string | undefined
  } = {},
): Subscription<R> => ({
  topic,
  handlers: handlers as Record<string, Handler<any, R> | undefined>,
  lockKey: options.lockKey,
})

export interface ConsumerDefinition<R = never> {
  readonly name: string
  readonly group: string
  readonly subscriptions: ReadonlyArray<Subscription<R>>
  readonly retry: RetryPolicy
  /** Partitions processed at once by one member. */
  readonly concurrency: number
}

export const defineConsumer = <R = never>(d: {
  readonly name: string
  readonly group: string
  readonly subscriptions: ReadonlyArray<Subscription<R>>
  readonly retry?: RetryPolicy
  readonly concurrency?: number
}): ConsumerDefinition<R> => ({
  name: d.name,
  group: d.group,
  subscriptions: d.subscriptions,
  retry: d.retry ?? defaultRetryPolicy,
  concurrency: d.concurrency ?? 4,
})
