import { describe, expect, test } from "bun:test"
import { SqlClient } from "@effect/sql"
import { Effect, Fiber, Layer, Schema } from "effect"
import { defineConsumer, on } from "../../src/engine/consumer/definition.ts"
import { Fatal } from "../../src/engine/consumer/errors.ts"
import { makeParser, type Parsed } from "../../src/engine/consumer/records.ts"
import { eventVersions } from "../../src/engine/event-versions.ts"
import { Outbox } from "../../src/engine/outbox.ts"
import { toKafkaMessage, versionHeader } from "../../src/engine/record.ts"
import { runRelay } from "../../src/engine/relay/index.ts"
import { defineTopic, type PayloadOf } from "../../src/engine/topic.ts"
import { DlqReplay } from "../../src/ops/dlq/replay.ts"
import { replayable } from "../../src/ops/dlq/selection.ts"
import {
  committedCount,
  dlqRows,
  ensureEffectsTable,
  eventually,
  produce,
  startMember,
  type TestRecord,
  testTenant,
  writeEffect,
} from "../support/consumer-fixtures.ts"
import { effectTest } from "../support/effect.ts"
import { uniqueId } from "../support/ids.ts"
import { relayConfigFor, relayDatabase } from "../support/relay-kit.ts"

/** Version 1 of a holding: where it runs as free text. */
const PlacedV1 = Schema.Struct({ minerId: Schema.String, site: Schema.String })
/** Version 2: the site becomes a hosting-site id (renamed, so a breaking change) and firmware is required. */
const PlacedV2 = Schema.Struct({
  minerId: Schema.String,
  hostingSiteId: Schema.String.pipe(Schema.pattern(/^[a-z0-9-]+$/)),
  firmware: Schema.NullOr(Schema.String),
})
const siteIdOf = (site: string) => site.toLowerCase().replaceAll(/[^a-z0-9]+/g, "-")

const topicsFor = (aggregatetype: string) => ({
  v1: defineTopic(aggregatetype, { Placed: PlacedV1 }),
  v2: defineTopic(aggregatetype, {
    Placed: eventVersions(PlacedV1).next(PlacedV2, (v1) => ({
      minerId: v1.minerId,
      hostingSiteId: siteIdOf(v1.site),
      firmware: null,
    })),
  }),
})

/** A v1 record as it sits in Kafka from before versions existed (or from Debezium): no version header. */
const unversioned = (payload: typeof PlacedV1.Type): TestRecord & { readonly id: string } => {
  const id = crypto.randomUUID()
  const m = toKafkaMessage({
    id,
    aggregatetype: "unused",
    aggregateid: payload.minerId,
    type: "Placed",
    payload: JSON.stringify(payload),
    tenantId: testTenant,
    traceparent: null,
    eventVersion: 1,
  })
  const { [versionHeader]: _, ...headers } = m.headers!
  return { id, key: m.key as string, value: m.value as string, headers }
}

const effectLabels = (group: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.map(
      sql<{ event_id: string; label: string }>`
        SELECT event_id::text, label FROM consumer_test_effects WHERE consumer_group = ${group}`,
      (rows) => new Map(rows.map((r) => [r.event_id, r.label])),
    ),
  )

describe("event versions", () => {
  effectTest(
    "v1 records in Kafka, relayed from the outbox and replayed from the DLQ are all handled by the v2 handler, upcast",
    () =>
      Effect.gen(function* () {
        yield* ensureEffectsTable
        const topics = topicsFor(uniqueId("versions").replaceAll("-", "_"))
        const topic = topics.v2
        const db = yield* relayDatabase
        yield* runRelay(relayConfigFor(db, { mode: "wal" })).pipe(Effect.provide(db.layer), Effect.forkScoped)
        const append = <T extends typeof topics.v1 | typeof topics.v2>(
          t: T,
          payload: PayloadOf<T, "Placed">,
        ) =>
          Effect.gen(function* () {
            const sql = yield* SqlClient.SqlClient
            const outbox = yield* Outbox
            const [id] = yield* sql.withTransaction(
              outbox.append(t, [{ type: "Placed", aggregateId: "m", tenantId: testTenant, payload }]),
            )
            return id!
          }).pipe(Effect.provide(Layer.merge(db.layer, Outbox.layer)))

        // Written while the declaration was v1: straight to Kafka without a version, and through the outbox.
        const inKafka = unversioned({ minerId: "m-1", site: "Texas North" })
        const toDeadLetter = unversioned({ minerId: "m-dlq", site: "Quebec 2" })
        yield* produce(topic.name, [inKafka, toDeadLetter])
        const relayed = yield* append(topics.v1, { minerId: "m-2", site: "Oslo" })
        const [outboxRow] = yield* Effect.flatMap(
          SqlClient.SqlClient,
          (sql) =>
            sql<{ event_version: number }>`SELECT event_version FROM event_outbox WHERE id = ${relayed}`,
        ).pipe(Effect.provide(db.layer))
        expect(outboxRow!.event_version).toBe(1)

        // The v1 consumer dead-letters one of them (its own merits, say).
        const group = uniqueId("versions-group")
        const v1Member = yield* startMember(
          defineConsumer({
            name: "versions-v1",
            group,
            subscriptions: [
              on(topics.v1, {
                Placed: (p, meta) =>
                  p.minerId === "m-dlq"
                    ? new Fatal({ message: "v1 cannot place it" })
                    : writeEffect(group, meta.eventId, meta.tenantId, `v1:${p.site}`),
              }),
            ],
          }),
        )
        yield* eventually(Effect.map(committedCount(group, topic.name), (n) => n === 3))
        yield* Fiber.interrupt(v1Member)
        expect((yield* dlqRows(group)).map((r) => r.event_id)).toEqual([toDeadLetter.id])

        // The declaration is now v2; a v2 record is written next to the v1 ones.
        const written = yield* append(topics.v2, {
          minerId: "m-3",
          hostingSiteId: "bergen-1",
          firmware: "braiins-os",
        })
        const v2Handler = (label: string) =>
          on(topic, {
            Placed: (p, meta) =>
              writeEffect(
                label,
                meta.eventId,
                meta.tenantId,
                `v${meta.eventVersion}:${p.hostingSiteId}:${p.firmware ?? "none"}`,
              ),
          })

        // A group that starts from the beginning on v2 sees every record, each as v2.
        const fresh = uniqueId("versions-fresh")
        yield* startMember(
          defineConsumer({ name: "versions-v2", group: fresh, subscriptions: [v2Handler(fresh)] }),
        )
        yield* eventually(Effect.map(committedCount(fresh, topic.name), (n) => n === 4))
        expect(yield* dlqRows(fresh)).toEqual([])
        expect(Object.fromEntries(yield* effectLabels(fresh))).toEqual({
          [inKafka.id]: "v1:texas-north:none",
          [toDeadLetter.id]: "v1:quebec-2:none",
          [relayed]: "v1:oslo:none",
          [written]: "v2:bergen-1:braiins-os",
        })

        // The v1 group upgraded to v2: its dead letter, a v1 record, replays through the v2 handler.
        yield* startMember(defineConsumer({ name: "versions-v2", group, subscriptions: [v2Handler(group)] }))
        const replayed = yield* Effect.gen(function* () {
          const replay = yield* DlqReplay
          return yield* replay.run(replayable({ group }), 10, 1, () => Effect.void)
        }).pipe(Effect.provide(DlqReplay.layer))
        expect(replayed.sent).toBe(1)
        yield* eventually(Effect.map(effectLabels(group), (labels) => labels.size === 4))
        expect(Object.fromEntries(yield* effectLabels(group))).toEqual({
          [inKafka.id]: "v1:Texas North",
          [relayed]: "v1:Oslo",
          [written]: "v2:bergen-1:braiins-os",
          [toDeadLetter.id]: "v1:quebec-2:none",
        })
        yield* eventually(
          Effect.map(dlqRows(group), (rows) => rows.length === 1 && rows[0]!.replay_status === "replayed"),
        )
      }),
    { timeout: 90_000 },
  )
})

describe("a record's version", () => {
  const topic = topicsFor("versions_pure").v2
  const parse = makeParser(
    defineConsumer({
      name: "pure",
      group: "pure-group",
      subscriptions: [on(topic, { Placed: () => Effect.void })],
    }),
  )
  const raw = (value: unknown, version: string | undefined) => {
    const r = unversioned({ minerId: "m", site: "x" })
    return {
      topic: topic.name,
      partition: 0,
      offset: "0",
      key: Buffer.from(r.key),
      value: Buffer.from(JSON.stringify(value)),
      headers: version === undefined ? r.headers : { ...r.headers, [versionHeader]: version },
    }
  }
  const outcome = (p: Parsed) =>
    p._tag === "Poison" ? p.error._tag : p._tag === "Ready" ? p.payload : p._tag

  test("absent is version 1; each version decodes with its own Schema and is upcast to the latest", () => {
    expect(outcome(parse(raw({ minerId: "m", site: "Big Site" }, undefined)))).toEqual({
      minerId: "m",
      hostingSiteId: "big-site",
      firmware: null,
    })
    expect(outcome(parse(raw({ minerId: "m", site: "Big Site" }, "1")))).toEqual(
      outcome(parse(raw({ minerId: "m", site: "Big Site" }, undefined))),
    )
    expect(outcome(parse(raw({ minerId: "m", hostingSiteId: "a-1", firmware: "x" }, "2")))).toEqual({
      minerId: "m",
      hostingSiteId: "a-1",
      firmware: "x",
    })
    // A v2 payload labelled v1 (or the other way round) does not decode.
    expect(outcome(parse(raw({ minerId: "m", hostingSiteId: "a-1", firmware: "x" }, "1")))).toBe(
      "DecodeFailed",
    )
    expect(outcome(parse(raw({ minerId: "m", site: "x" }, "2")))).toBe("DecodeFailed")
  })

  test("a version newer than the declaration's latest, or not a version, is dead-lettered as UnknownEventVersion", () => {
    for (const version of ["3", "0", "two", "1.5", "-1"])
      expect(outcome(parse(raw({ minerId: "m", site: "x" }, version)))).toBe("UnknownEventVersion")
  })

  test("an upcast whose result breaks the next version's refinements fails decoding, naming the step", () => {
    const broken = defineTopic("versions_broken", {
      Placed: eventVersions(PlacedV1).next(PlacedV2, (v1) => ({
        minerId: v1.minerId,
        hostingSiteId: v1.site,
        firmware: null,
      })),
    })
    const parsed = makeParser(
      defineConsumer({ name: "b", group: "b", subscriptions: [on(broken, { Placed: () => Effect.void })] }),
    )({ ...raw({ minerId: "m", site: "Not An Id" }, undefined), topic: broken.name })
    expect(parsed._tag === "Poison" && parsed.error._tag === "DecodeFailed" && parsed.error.reason).toContain(
      "upcast from v1",
    )
  })
})
