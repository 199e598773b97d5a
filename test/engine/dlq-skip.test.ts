/**
 * A redelivered event whose record waits in the DLQ is skipped by the inbox claim until it is
 * replayed: per group, per tenant (under RLS), through the replay states, in a race with the replay
 * itself; and the claim only reads the DLQ, so the locks an operator or the replay CLI takes stop
 * neither good events nor the replay.
 */
import { describe, expect } from "bun:test"
import { SqlClient } from "@effect/sql"
import { Deferred, Duration, Effect, Fiber } from "effect"
import { defineConsumer, on } from "../../src/engine/consumer/definition.ts"
import {
  markReplayed,
  replayDlqIdHeader,
  replayGroupHeader,
  writeDeadLetter,
} from "../../src/engine/consumer/dlq.ts"
import { Fatal } from "../../src/engine/consumer/errors.ts"
import { claim, claimReplay, type InboxRow } from "../../src/engine/consumer/inbox.ts"
import { DlqReplay } from "../../src/ops/dlq/replay.ts"
import { withTenant } from "../../src/platform/db.ts"
import {
  committedCount,
  dlqRows,
  effectCounts,
  ensureEffectsTable,
  eventually,
  produce,
  startMember,
  type TestRecord,
  testTenant,
  workRecord,
  workTopic,
  writeEffect,
} from "../support/consumer-fixtures.ts"
import { effectTest } from "../support/effect.ts"
import { uniqueId } from "../support/ids.ts"

const occurrencesOf = (group: string) =>
  Effect.flatMap(
    SqlClient.SqlClient,
    (sql) => sql<{ event_id: string | null; occurrences: number; replay_status: string }>`
      SELECT event_id::text, occurrences, replay_status FROM event_dlq
      WHERE consumer_group = ${group} ORDER BY id`,
  )

const replayOf = (r: TestRecord, group: string, dlqId: string): TestRecord => ({
  ...r,
  headers: { ...r.headers, [replayGroupHeader]: group, [replayDlqIdHeader]: dlqId },
})

describe("the DLQ skip of a redelivered event", () => {
  effectTest(
    "redelivered in chunks that mix tenants, each tenant's dead-lettered event is skipped and counted on its own entry; another group, whose handler succeeds, processes those events once",
    () =>
      Effect.gen(function* () {
        yield* ensureEffectsTable
        const topic = workTopic()
        const failing = uniqueId("dlq-tenants-a")
        const other = uniqueId("dlq-tenants-b")
        const calls = new Map<string, number>()
        const consumer = (group: string, fails: boolean) =>
          defineConsumer({
            name: group,
            group,
            subscriptions: [
              on(topic, {
                Work: (p, meta) => {
                  const call = `${group}/${p.label}`
                  calls.set(call, (calls.get(call) ?? 0) + 1)
                  return fails && p.label.startsWith("bad")
                    ? new Fatal({ message: `${p.label} broken` })
                    : writeEffect(group, meta.eventId, meta.tenantId, p.label)
                },
              }),
            ],
          })
        const tenants = [crypto.randomUUID(), crypto.randomUUID(), crypto.randomUUID()]
        const records = tenants.flatMap((tenantId, t) =>
          ["ok", "bad", "ok2"].map((label) =>
            workRecord({ label: `${label}-${t}` }, { key: "one-partition", tenantId }),
          ),
        )
        yield* produce(topic.name, records)
        yield* startMember(consumer(failing, true))
        yield* eventually(Effect.map(committedCount(failing, topic.name), (n) => n === records.length))
        // The other group starts with the failing group's entries open for the same event ids.
        yield* startMember(consumer(other, false))
        yield* eventually(Effect.map(committedCount(other, topic.name), (n) => n === records.length))
        yield* produce(topic.name, records)
        yield* eventually(Effect.map(committedCount(failing, topic.name), (n) => n === 2 * records.length))
        yield* eventually(Effect.map(committedCount(other, topic.name), (n) => n === 2 * records.length))

        const bad = records.filter((_, i) => i % 3 === 1)
        const entries = yield* Effect.flatMap(
          SqlClient.SqlClient,
          (sql) => sql<{ event_id: string; tenant_id: string; occurrences: number }>`
            SELECT event_id::text, tenant_id::text, occurrences FROM event_dlq
            WHERE consumer_group = ${failing} ORDER BY id`,
        )
        expect(entries).toEqual(bad.map((r) => ({ event_id: r.id, tenant_id: r.tenantId, occurrences: 2 })))
        const failingEffects = yield* effectCounts(failing)
        const otherEffects = yield* effectCounts(other)
        for (const r of records) {
          expect(failingEffects.get(r.id)).toBe(bad.includes(r) ? undefined : 1)
          expect(otherEffects.get(r.id)).toBe(1)
        }
        for (const t of [0, 1, 2]) {
          expect(calls.get(`${failing}/bad-${t}`)).toBe(1)
          expect(calls.get(`${other}/bad-${t}`)).toBe(1)
        }
      }),
  )

  effectTest(
    "delivered again while its entry is replaying, failed again, or after its replay: skipped and counted until the replay succeeds, then an inbox duplicate; one effect",
    () =>
      Effect.gen(function* () {
        yield* ensureEffectsTable
        const sql = yield* SqlClient.SqlClient
        const topic = workTopic()
        const group = uniqueId("dlq-states")
        const broken = new Set(["bad"])
        let calls = 0
        const consumer = defineConsumer({
          name: "dlq-states",
          group,
          subscriptions: [
            on(topic, {
              Work: (p, meta) => {
                if (p.label === "bad") calls += 1
                return broken.has(p.label)
                  ? new Fatal({ message: `${p.label} broken` })
                  : writeEffect(group, meta.eventId, meta.tenantId, p.label)
              },
            }),
          ],
        })
        const key = { key: "one-partition" }
        const bad = workRecord({ label: "bad" }, key)
        yield* produce(topic.name, [bad])
        yield* startMember(consumer)
        yield* eventually(Effect.map(committedCount(group, topic.name), (n) => n === 1))
        const [entry] = yield* occurrencesOf(group)
        expect(entry).toEqual({ event_id: bad.id, occurrences: 1, replay_status: "pending" })
        const id = (yield* dlqRows(group))[0]!.id
        const step = (records: ReadonlyArray<TestRecord>, committed: number) =>
          Effect.zipRight(
            produce(topic.name, records),
            eventually(Effect.map(committedCount(group, topic.name), (n) => n === committed)),
          )

        // What `dlq replay` does first; the original arrives again before the replay's record.
        yield* sql`UPDATE event_dlq SET replay_status = 'replaying', replay_count = 1 WHERE id = ${id}`
        yield* step([bad], 2)
        yield* step([replayOf(bad, group, id)], 3)
        expect(yield* occurrencesOf(group)).toEqual([
          { event_id: bad.id, occurrences: 2, replay_status: "failed" },
        ])
        yield* step([bad], 4)
        expect(yield* occurrencesOf(group)).toEqual([
          { event_id: bad.id, occurrences: 3, replay_status: "failed" },
        ])
        expect(calls).toBe(2)

        broken.delete("bad")
        yield* step([replayOf(bad, group, id), bad], 6)
        expect(yield* occurrencesOf(group)).toEqual([
          { event_id: bad.id, occurrences: 3, replay_status: "replayed" },
        ])
        expect(calls).toBe(3)
        expect((yield* effectCounts(group)).get(bad.id)).toBe(1)
      }),
  )

  effectTest(
    "a replay and a redelivery of the same event in two members' transactions at once: exactly one of them claims it, in either order, and neither waits for the other",
    () =>
      Effect.gen(function* () {
        yield* ensureEffectsTable
        const group = uniqueId("dlq-race")
        yield* Effect.addFinalizer(() =>
          Effect.ignore(
            Effect.flatMap(
              SqlClient.SqlClient,
              (sql) => sql`DELETE FROM event_dlq WHERE consumer_group = ${group}`,
            ),
          ),
        )
        const row = (): InboxRow => ({
          eventId: crypto.randomUUID(),
          tenantId: testTenant,
          eventType: "Work",
          topic: "events.race",
          partition: 0,
          offset: "0",
        })
        const deadLettered = (r: InboxRow) =>
          Effect.map(
            writeDeadLetter({
              group,
              ...r,
              key: "k",
              value: "{}",
              headers: {},
              errorTag: "Fatal",
              errorMessage: "broken",
              attempts: 1,
            }),
            (w) => w.id,
          )
        /** The replay's transaction up to its commit, which waits for `commit`. */
        const replay = (
          r: InboxRow,
          dlqId: string,
          done: Deferred.Deferred<boolean>,
          commit: Deferred.Deferred<void>,
        ) =>
          withTenant(r.tenantId)(
            Effect.gen(function* () {
              const c = yield* claimReplay(group, r)
              if (c.claimed.has(r.eventId)) yield* writeEffect(group, r.eventId, r.tenantId, "replay")
              yield* markReplayed(group, dlqId)
              yield* Deferred.succeed(done, c.claimed.has(r.eventId))
              yield* Deferred.await(commit)
            }),
          )
        const redelivery = (r: InboxRow) =>
          withTenant(r.tenantId)(
            Effect.gen(function* () {
              const sql = yield* SqlClient.SqlClient
              // Waiting on the replay's locks would wait for a commit that waits for this claim.
              yield* sql`SET LOCAL lock_timeout = '2s'`
              const c = yield* claim(group, [r])
              if (c.claimed.has(r.eventId)) yield* writeEffect(group, r.eventId, r.tenantId, "redelivery")
              return c.claimed.has(r.eventId)
            }),
          )

        // The replay's transaction first, open while the redelivery is claimed.
        const first = row()
        const firstId = yield* deadLettered(first)
        const replayed = yield* Deferred.make<boolean>()
        const commit = yield* Deferred.make<void>()
        // Scoped: on a failure it ends before the finalizer that deletes its rows.
        const replaying = yield* Effect.forkScoped(replay(first, firstId, replayed, commit))
        expect(yield* Deferred.await(replayed)).toBe(true)
        expect(yield* redelivery(first)).toBe(false)
        yield* Deferred.succeed(commit, undefined)
        yield* Fiber.join(replaying)
        expect(yield* redelivery(first)).toBe(false)

        // The redelivery first, then the replay.
        const second = row()
        const secondId = yield* deadLettered(second)
        expect(yield* redelivery(second)).toBe(false)
        const replayed2 = yield* Deferred.make<boolean>()
        const commit2 = yield* Deferred.make<void>()
        yield* Deferred.succeed(commit2, undefined)
        yield* replay(second, secondId, replayed2, commit2)
        expect(yield* Deferred.await(replayed2)).toBe(true)

        const effects = yield* effectCounts(group)
        expect([effects.get(first.eventId), effects.get(second.eventId)]).toEqual([1, 1])
      }),
  )

  effectTest(
    "good events keep flowing while event_dlq is locked against writes (the lock CREATE INDEX takes): the claim only reads the DLQ",
    () =>
      Effect.gen(function* () {
        yield* ensureEffectsTable
        const sql = yield* SqlClient.SqlClient
        const topic = workTopic()
        const group = uniqueId("dlq-locked")
        const consumer = defineConsumer({
          name: "dlq-locked",
          group,
          subscriptions: [
            on(topic, { Work: (p, meta) => writeEffect(group, meta.eventId, meta.tenantId, p.label) }),
          ],
        })
        yield* produce(topic.name, [workRecord({ label: "warm-up" })])
        yield* startMember(consumer)
        yield* eventually(Effect.map(committedCount(group, topic.name), (n) => n === 1))

        const locked = yield* Deferred.make<void>()
        const release = yield* Deferred.make<void>()
        const holder = yield* Effect.fork(
          sql.withTransaction(
            Effect.gen(function* () {
              yield* sql`LOCK TABLE event_dlq IN SHARE MODE`
              yield* Deferred.succeed(locked, undefined)
              yield* Deferred.await(release)
            }),
          ),
        )
        yield* Deferred.await(locked)
        const during = [workRecord({ label: "a" }), workRecord({ label: "b" }), workRecord({ label: "c" })]
        yield* produce(topic.name, during)
        const flowed = yield* eventually(
          Effect.map(effectCounts(group), (counts) => during.every((r) => counts.get(r.id) === 1)),
          Duration.seconds(15),
        ).pipe(Effect.either)
        yield* Deferred.succeed(release, undefined)
        yield* Fiber.join(holder)
        expect(flowed._tag).toBe("Right")
      }),
  )

  effectTest(
    "an operator's replay while a member's transaction has just skipped the entry's redelivery sends the entry: the skip holds no lock on it",
    () =>
      Effect.gen(function* () {
        yield* ensureEffectsTable
        const topic = workTopic()
        const group = uniqueId("dlq-unlocked")
        const slowStarted = yield* Deferred.make<void>()
        const slowRelease = yield* Deferred.make<void>()
        const broken = new Set(["bad"])
        const consumer = defineConsumer({
          name: "dlq-unlocked",
          group,
          subscriptions: [
            on(topic, {
              Work: (p, meta) =>
                broken.has(p.label)
                  ? new Fatal({ message: `${p.label} broken` })
                  : p.label === "slow"
                    ? Effect.zipRight(
                        Deferred.succeed(slowStarted, undefined),
                        Effect.zipRight(
                          Deferred.await(slowRelease),
                          writeEffect(group, meta.eventId, meta.tenantId, p.label),
                        ),
                      )
                    : writeEffect(group, meta.eventId, meta.tenantId, p.label),
            }),
          ],
        })
        const key = { key: "one-partition" }
        const bad = workRecord({ label: "bad" }, key)
        yield* produce(topic.name, [bad])
        yield* startMember(consumer)
        yield* eventually(Effect.map(committedCount(group, topic.name), (n) => n === 1))
        const [entry] = yield* dlqRows(group)
        expect(entry?.event_id).toBe(bad.id)

        // Delivered again ahead of an event whose handler takes its time, in one chunk transaction.
        yield* produce(topic.name, [bad, workRecord({ label: "slow" }, key)])
        yield* Deferred.await(slowStarted)
        broken.delete("bad")
        const summary = yield* Effect.flatMap(DlqReplay, (r) =>
          r.run({ group, statuses: ["pending", "failed"] }, 10, 1, () => Effect.void),
        ).pipe(Effect.provide(DlqReplay.layer))
        yield* Deferred.succeed(slowRelease, undefined)
        expect({ sent: summary.sent, failed: summary.failed }).toEqual({ sent: 1, failed: 0 })
        yield* eventually(Effect.map(occurrencesOf(group), (rows) => rows[0]?.replay_status === "replayed"))
        expect((yield* effectCounts(group)).get(bad.id)).toBe(1)
        expect(yield* occurrencesOf(group)).toEqual([
          { event_id: bad.id, occurrences: 2, replay_status: "replayed" },
        ])
      }),
  )
})
