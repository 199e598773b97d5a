/**
 * The whole platform for an end-to-end test, in the test's scope: a migrated database of its own
 * (so the WAL relay's slot and catch-up see only this test's rows, and both go with it), the HTTP
 * API on a free port, the WAL relay, and members of the HashInsight consumer groups — under
 * test-unique group ids, started at the topics' current end so other users of the shared Kafka
 * cluster cannot feed them old events.
 */
import { PgClient } from "@effect/sql-pg"
import { Deferred, Effect, Layer, Option, Redacted, Schema } from "effect"
import type { ConsumerDefinition } from "../../src/engine/consumer/definition.ts"
import { Outbox } from "../../src/engine/outbox.ts"
import { runRelay } from "../../src/engine/relay/index.ts"
import { HashInsightApi } from "../../src/hashinsight/api.ts"
import { HashInsightRoutes } from "../../src/hashinsight/routes.ts"
import { ApiServer } from "../../src/http/server.ts"
import { createTenant } from "../../src/http/tenants.ts"
import { Kafka } from "../../src/platform/kafka.ts"
import { freePort } from "../../src/platform/stack/index.ts"
import { fastGroup, startMember } from "./consumer-fixtures.ts"
import { uniqueId } from "./ids.ts"
import { relayConfigFor, relayDatabase } from "./relay-kit.ts"

/** Commits the topics' end offsets for `group`, so its first member starts at the end. */
export const startGroupAtEnd = (group: string, topics: ReadonlyArray<string>) =>
  Effect.gen(function* () {
    const kafka = yield* Kafka
    const admin = yield* kafka.admin
    const consumer = yield* kafka.consumer({ groupId: group, ...fastGroup })
    const joined = yield* Deferred.make<void>()
    consumer.on(consumer.events.GROUP_JOIN, () => Deferred.unsafeDone(joined, Effect.void))
    yield* Effect.promise(() => consumer.subscribe({ topics: [...topics] }))
    yield* Effect.promise(() =>
      consumer.run({ autoCommit: false, eachBatchAutoResolve: false, eachBatch: async () => {} }),
    )
    yield* Deferred.await(joined)
    for (const topic of topics) {
      const ends = yield* Effect.promise(() => admin.fetchTopicOffsets(topic))
      yield* Effect.promise(() =>
        consumer.commitOffsets(ends.map((p) => ({ topic, partition: p.partition, offset: p.high }))),
      )
    }
  }).pipe(Effect.scoped)

/** A registered consumer under a group id of this test's own, started at the topics' end. */
export const startConsumer = <R>(def: ConsumerDefinition<R>) =>
  Effect.gen(function* () {
    const own = { ...def, group: uniqueId(def.group) }
    yield* startGroupAtEnd(
      own.group,
      own.subscriptions.map((s) => s.topic.name),
    )
    yield* startMember(own)
    return own
  })

/**
 * A migrated database of the test's own with a pool large enough for API, relay and consumers, as a
 * layer to provide to everything that should use it.
 */
export const e2eDatabase = Effect.gen(function* () {
  const db = yield* relayDatabase
  const pool = yield* Layer.build(PgClient.layer({ url: Redacted.make(db.url), maxConnections: 16 })).pipe(
    Effect.orDie,
  )
  return { ...db, layer: Layer.succeedContext(pool) }
})

export type E2eDatabase = Effect.Effect.Success<typeof e2eDatabase>

/** API on a free port and the WAL relay, both on `db`; returns the API's base URL. */
export const startApiAndRelay = (db: E2eDatabase) =>
  Effect.gen(function* () {
    const port = yield* Effect.promise(freePort)
    yield* Layer.build(
      ApiServer.layer({ api: HashInsightApi, routes: HashInsightRoutes, port }).pipe(
        Layer.provide(Outbox.layer),
      ),
    )
    yield* Effect.forkScoped(runRelay(relayConfigFor(db, { mode: "wal" })))
    return `http://127.0.0.1:${port}`
  })

/** A tenant of `db` and a client for the API that authenticates as it. */
export const tenantClient = (baseUrl: string) =>
  Effect.gen(function* () {
    const tenant = yield* createTenant(uniqueId("e2e"))
    const apiKey = Redacted.value(tenant.apiKey)
    const call = (method: string, path: string, body?: unknown, headers: Record<string, string> = {}) =>
      Effect.promise(async () => {
        const response = await fetch(`${baseUrl}${path}`, {
          method,
          headers: {
            Authorization: `Bearer ${apiKey}`,
            ...(body === undefined ? {} : { "Content-Type": "application/json" }),
            ...headers,
          },
          body: body === undefined ? undefined : JSON.stringify(body),
        })
        const text = await response.text()
        return { status: response.status, body: text ? (JSON.parse(text) as unknown) : undefined }
      })
    /** A GET decoded with the route's own success Schema; None while it answers 404. */
    const read = <A, I>(path: string, schema: Schema.Schema<A, I>) =>
      Effect.flatMap(call("GET", path), (r) =>
        r.status === 404
          ? Effect.succeed(Option.none<A>())
          : r.status === 200
            ? Effect.map(Schema.decodeUnknown(schema)(r.body), Option.some)
            : Effect.die(new Error(`GET ${path} answered ${r.status}: ${JSON.stringify(r.body)}`)),
      )
    return { tenantId: tenant.id, apiKey, call, read }
  })
