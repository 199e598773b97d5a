/**
 * The declared payload schemas as JSON Schema, per topic, event type and version — generated with
 * Effect's own `JSONSchema.make` from the Schemas the outbox encodes with, so they describe the
 * JSON a record's value holds. What `bun run schemas snapshot` writes under `schemas/`, what the
 * compatibility gate compares, and what an application serves to consumers in other languages.
 */
import { JSONSchema } from "effect"
import type { Topic } from "./topic.ts"

export type JsonSchema = JSONSchema.JsonSchema7Root

export interface EventTypeSchemas {
  /** The version writers produce now. */
  readonly latest: number
  /** Every version a consumer still reads, by number ("1", "2", …). */
  readonly versions: Readonly<Record<string, JsonSchema>>
}

export interface TopicSchemas {
  readonly topic: string
  readonly aggregatetype: string
  readonly events: Readonly<Record<string, EventTypeSchemas>>
}

const byName = <A>(entries: ReadonlyArray<readonly [string, A]>) =>
  Object.fromEntries([...entries].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))

export const topicSchemas = (topic: Topic): TopicSchemas => ({
  topic: topic.name,
  aggregatetype: topic.aggregatetype,
  events: byName(
    Object.entries(topic.versions).map(([type, history]) => [
      type,
      {
        latest: history.version,
        versions: Object.fromEntries(history.schemas.map((s, i) => [String(i + 1), JSONSchema.make(s)])),
      },
    ]),
  ),
})

export const registrySchemas = (topics: ReadonlyArray<Topic>): ReadonlyArray<TopicSchemas> =>
  [...topics].map(topicSchemas).sort((a, b) => (a.topic < b.topic ? -1 : a.topic > b.topic ? 1 : 0))
