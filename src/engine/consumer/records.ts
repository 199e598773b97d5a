/**
 * From a Kafka record to what the runtime does with it: skip it (another group's replay, a type
 * this consumer does not handle), dead-letter it at once (poison: missing or malformed headers,
 * unknown type or version, payload that does not decode as the version it was written as), or run
 * its handler with the payload upcast to the latest version. Pure and synchronous.
 */
import { Either } from "effect"
import type { KafkaHeaders } from "../../platform/kafka.ts"
import { decodeVersion } from "../event-versions.ts"
import { headersAsText, MissingHeader, type RecordMeta, readRecordMeta, versionHeader } from "../record.ts"
import type { ConsumerDefinition, Handler, Subscription } from "./definition.ts"
import { replayDlqIdHeader, replayGroupHeader } from "./dlq.ts"
import { DecodeFailed, Fatal, MalformedHeader, UnknownEventType, UnknownEventVersion } from "./errors.ts"

export interface RawRecord {
  readonly topic: string
  readonly partition: number
  readonly offset: string
  readonly key: Buffer | null
  readonly value: Buffer | null
  readonly headers?: KafkaHeaders | undefined
}

interface Common {
  readonly raw: RawRecord
  /** Set when the DLQ CLI re-produced this record for our group. */
  readonly replayDlqId: string | undefined
}

export type Parsed =
  | (Common & { readonly _tag: "Skip"; readonly reason: "replay-other-group" | "unhandled" })
  | (Common & {
      readonly _tag: "Poison"
      readonly error:
        | MissingHeader
        | MalformedHeader
        | UnknownEventType
        | UnknownEventVersion
        | DecodeFailed
        | Fatal
      readonly meta: Partial<RecordMeta>
    })
  | (Common & {
      readonly _tag: "Ready"
      readonly meta: RecordMeta & { readonly eventVersion: number }
      readonly payload: unknown
      readonly handler: Handler<unknown, any>
      readonly lockKey: string | undefined
    })

export type Ready = Extract<Parsed, { _tag: "Ready" }>

const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i
const versionNumber = /^[1-9][0-9]{0,8}$/

export const makeParser = <R>(def: ConsumerDefinition<R>) => {
  const byTopic = new Map<string, Subscription<R>>(def.subscriptions.map((s) => [s.topic.name, s]))

  return (raw: RawRecord): Parsed => {
    const headers = headersAsText(raw.headers)
    const replayGroup = headers[replayGroupHeader]
    if (replayGroup !== undefined && replayGroup !== def.group)
      return { _tag: "Skip", reason: "replay-other-group", raw, replayDlqId: undefined }
    const dlqId = headers[replayDlqIdHeader]
    const replayDlqId = replayGroup !== undefined && dlqId && /^\d+$/.test(dlqId) ? dlqId : undefined
    const common = { raw, replayDlqId }

    const read = readRecordMeta(raw.headers)
    if (read instanceof MissingHeader) return { ...common, _tag: "Poison", error: read, meta: {} }
    for (const [header, value] of [
      ["id", read.eventId],
      ["tenantId", read.tenantId],
    ] as const) {
      if (!uuid.test(value))
        return { ...common, _tag: "Poison", error: new MalformedHeader({ header, value }), meta: {} }
    }
    // The ids as PostgreSQL writes a uuid: the inbox claim answers with those, matched to the record's.
    const meta = { ...read, eventId: read.eventId.toLowerCase(), tenantId: read.tenantId.toLowerCase() }
    const poison = (error: UnknownEventType | UnknownEventVersion | DecodeFailed | Fatal): Parsed => ({
      ...common,
      _tag: "Poison",
      error,
      meta,
    })

    const sub = byTopic.get(raw.topic)
    const history = sub?.topic.versions[meta.eventType]
    if (!sub || !history) return poison(new UnknownEventType({ topic: raw.topic, eventType: meta.eventType }))
    const handler = sub.handlers[meta.eventType]
    if (!handler) return { ...common, _tag: "Skip", reason: "unhandled" }

    const versionText = headers[versionHeader] ?? "1"
    const eventVersion = versionNumber.test(versionText) ? Number(versionText) : undefined
    const unknownVersion = () =>
      poison(
        new UnknownEventVersion({ eventType: meta.eventType, version: versionText, latest: history.version }),
      )
    if (eventVersion === undefined) return unknownVersion()

    let json: unknown
    try {
      json = JSON.parse(raw.value?.toString("utf8") ?? "")
    } catch (e) {
      return poison(
        new DecodeFailed({ eventType: meta.eventType, reason: `not JSON (${(e as Error).message})` }),
      )
    }
    const decoded = decodeVersion(history, eventVersion, json)
    if (Either.isLeft(decoded))
      return decoded.left._tag === "UnknownVersion"
        ? unknownVersion()
        : poison(new DecodeFailed({ eventType: meta.eventType, reason: decoded.left.reason }))

    let lockKey: string | undefined
    try {
      lockKey = sub.lockKey?.(decoded.right, {
        ...meta,
        eventVersion,
        ...position(raw),
        attempt: 0,
        lock: undefined,
      })
    } catch (e) {
      return poison(new Fatal({ message: `lockKey function threw: ${String(e)}` }))
    }
    return {
      ...common,
      _tag: "Ready",
      meta: { ...meta, eventVersion },
      payload: decoded.right,
      handler,
      lockKey,
    }
  }
}

export const position = (raw: RawRecord) => ({
  topic: raw.topic,
  partition: raw.partition,
  offset: raw.offset,
  key: raw.key?.toString("utf8"),
})

/** Consecutive records the runtime handles as one step, in partition order. */
export type Unit =
  | { readonly _tag: "Skip"; readonly items: ReadonlyArray<Extract<Parsed, { _tag: "Skip" }>> }
  | { readonly _tag: "Poison"; readonly item: Extract<Parsed, { _tag: "Poison" }> }
  | { readonly _tag: "Single"; readonly item: Ready }
  /** Events claimed and handled in one transaction, under all the locks they name. */
  | { readonly _tag: "Chunk"; readonly items: ReadonlyArray<Ready> }

export const lastOffsetOf = (unit: Unit): string => {
  switch (unit._tag) {
    case "Poison":
    case "Single":
      return unit.item.raw.offset
    default:
      return unit.items[unit.items.length - 1]!.raw.offset
  }
}

/** Groups a batch into units, keeping order; replayed events go one by one. */
export const plan = (parsed: ReadonlyArray<Parsed>, maxChunk: number): ReadonlyArray<Unit> => {
  const units: Array<Unit> = []
  for (const p of parsed) {
    const last = units[units.length - 1]
    if (p._tag === "Skip") {
      if (last?._tag === "Skip") (last.items as Array<typeof p>).push(p)
      else units.push({ _tag: "Skip", items: [p] })
    } else if (p._tag === "Poison") {
      units.push({ _tag: "Poison", item: p })
    } else if (p.replayDlqId !== undefined) {
      units.push({ _tag: "Single", item: p })
    } else if (last?._tag === "Chunk" && last.items.length < maxChunk) {
      ;(last.items as Array<Ready>).push(p)
    } else {
      units.push({ _tag: "Chunk", items: [p] })
    }
  }
  return units
}
