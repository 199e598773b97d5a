/**
 * A topic is declared once: its aggregate type (which names the Kafka topic `events.<aggregatetype>`,
 * exactly as Debezium's outbox router routes it) and a payload Schema per event type. The outbox,
 * the relay and every consumer use the declaration; no topic name is written as a string elsewhere.
 */
import type { Schema } from "effect"

export type EventSchemas = Record<string, Schema.Schema.AnyNoContext>

export interface Topic<Agg extends string = string, Events extends EventSchemas = EventSchemas> {
  readonly aggregatetype: Agg
  readonly name: `events.${Agg}`
  readonly events: Events
}

export const defineTopic = <const Agg extends string, const Events extends EventSchemas>(
  aggregatetype: Agg,
  events: Events,
): Topic<Agg, Events> => ({ aggregatetype, name: `events.${aggregatetype}`, events })

/** The Kafka topic an aggregate type routes to (Debezium: `route.topic.replacement=events.${routedByValue}`). */
export const topicNameOf = (aggregatetype: string) => `events.${aggregatetype}` as const

export type EventType<T extends Topic> = keyof T["events"] & string
export type PayloadOf<T extends Topic, K extends EventType<T>> = Schema.Schema.Type<T["events"][K]>
