/**
 * A topic is declared once: its aggregate type (which names the Kafka topic `events.<aggregatetype>`,
 * exactly as Debezium's outbox router routes it) and a payload Schema per event type — or, for an
 * event type that changed, its history (`eventVersions(v1).next(v2, upcast)`). The outbox, the relay
 * and every consumer use the declaration; no topic name is written as a string elsewhere.
 */
import type { Schema } from "effect"
import { type EventVersions, eventVersions, isEventVersions } from "./event-versions.ts"

export type EventDeclaration = Schema.Schema.AnyNoContext | EventVersions
export type EventSchemas = Record<string, EventDeclaration>

type LatestOf<D> = D extends EventVersions<infer S> ? S : D extends Schema.Schema.AnyNoContext ? D : never

export interface Topic<Agg extends string = string, Events extends EventSchemas = EventSchemas> {
  readonly aggregatetype: Agg
  readonly name: `events.${Agg}`
  /** Each event type's latest Schema: what writers encode with and handlers are typed by. */
  readonly events: { readonly [K in keyof Events]: LatestOf<Events[K]> }
  /** Each event type's history; a plain Schema is a history of one version. */
  readonly versions: { readonly [K in keyof Events]: EventVersions<LatestOf<Events[K]>> }
}

export const defineTopic = <const Agg extends string, const Events extends EventSchemas>(
  aggregatetype: Agg,
  events: Events,
): Topic<Agg, Events> => {
  const versions = Object.fromEntries(
    Object.entries(events).map(([type, d]) => [type, isEventVersions(d) ? d : eventVersions(d)]),
  )
  return {
    aggregatetype,
    name: `events.${aggregatetype}`,
    events: Object.fromEntries(Object.entries(versions).map(([type, v]) => [type, v.latest])),
    versions,
  } as unknown as Topic<Agg, Events>
}

/** The Kafka topic an aggregate type routes to (Debezium: `route.topic.replacement=events.${routedByValue}`). */
export const topicNameOf = (aggregatetype: string) => `events.${aggregatetype}` as const

export type EventType<T extends Topic> = keyof T["events"] & string
export type PayloadOf<T extends Topic, K extends EventType<T>> = Schema.Schema.Type<T["events"][K]>
