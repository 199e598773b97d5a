import { describe, expect } from "bun:test"
import { SqlClient } from "@effect/sql"
import { Effect } from "effect"
import { defineConsumer, on } from "../../src/engine/consumer/definition.ts"
import { Fatal, Retryable } from "../../src/engine/consumer/errors.ts"
import { decodeRetryPolicy } from "../../src/engine/consumer/retry.ts"
import {
  committedCount,
  dlqRows,
  effectCounts,
  ensureEffectsTable,
  eventually,
  produce,
  startMember,
  testTenant,
  workRecord,
  workTopic,
  writeEffect,
} from "../support/consumer-fixtures.ts"
import { effectTest } from "../support/effect.ts"
import { uniqueId } from "../support/ids.ts"

const policy = decodeRetryPolicy({ maxAttempts: 3, baseDelayMs: 150, factor: 2, capMs: 1000, jitter: 0 })

describe("consumer retries and dead letters", () => {
  effectTest(
    "retryable twice then success: one effect after 3 attempts with the policy's delays; fatal: DLQ on attempt 1; always retryable: DLQ after the policy's attempts",
    () =>
      Effect.gen(function* () {
        yield* ensureEffectsTable
        const topic = workTopic()
        const group = uniqueId("retry-group")
        const calls = new Map<string, Array<number>>()
        const consumer = defineConsumer({
          name: "retry-test",
          group,
          retry: policy,
          subscriptions: [
            on(topic, {
              Work: (p, meta) =>
                Effect.gen(function* () {
                  const seen = calls.get(p.label) ?? []
                  seen.push(performance.now())
                  calls.set(p.label, seen)
                  // The effect is written before the failure: it must roll back with it.
                  yield* writeEffect(group, meta.eventId, meta.tenantId, p.label)
                  if (p.label === "flaky" && seen.length <= 2)
                    return yield* new Retryable({ message: `flaky attempt ${meta.attempt}` })
                  if (p.label === "fatal") return yield* new Fatal({ message: "cannot ever work" })
                  if (p.label === "always") return yield* new Retryable({ message: "still down" })
                  if (p.label === "constraint") {
                    const sql = yield* SqlClient.SqlClient
                    yield* sql`INSERT INTO consumer_test_effects (consumer_group, event_id, tenant_id) VALUES (${group}, NULL, ${meta.tenantId})`
                  }
                }),
            }),
          ],
        })
        const records = ["ok-before", "flaky", "fatal", "always", "constraint", "ok-after"].map((label) =>
          workRecord({ label }, { key: "one-partition" }),
        )
        yield* produce(topic.name, records)
        yield* startMember(consumer)
        yield* eventually(Effect.map(committedCount(group, topic.name), (n) => n === records.length))

        const flaky = calls.get("flaky")!
        expect(flaky.length).toBe(3)
        expect(flaky[1]! - flaky[0]!).toBeGreaterThanOrEqual(145)
        expect(flaky[2]! - flaky[1]!).toBeGreaterThanOrEqual(295)
        expect(calls.get("fatal")!.length).toBe(1)
        expect(calls.get("always")!.length).toBe(3)
        expect(calls.get("constraint")!.length).toBe(1)

        const effects = yield* effectCounts(group)
        const id = (label: string) => records.find((r) => JSON.parse(r.value!).label === label)!.id
        expect(effects.get(id("flaky"))).toBe(1)
        expect(effects.get(id("ok-before"))).toBe(1)
        expect(effects.get(id("ok-after"))).toBe(1)
        expect(effects.has(id("fatal"))).toBe(false)
        expect(effects.has(id("always"))).toBe(false)

        const dlq = yield* dlqRows(group)
        const byEvent = new Map(dlq.map((d) => [d.event_id, d]))
        expect(dlq.length).toBe(3)
        expect(byEvent.get(id("fatal"))).toMatchObject({
          error_tag: "Fatal",
          attempts: 1,
          tenant_id: testTenant,
        })
        expect(byEvent.get(id("always"))).toMatchObject({ error_tag: "Retryable", attempts: 3 })
        expect(byEvent.get(id("always"))!.error_message).toContain("still down")
        expect(byEvent.get(id("constraint"))).toMatchObject({ error_tag: "SqlError", attempts: 1 })
        expect(byEvent.get(id("constraint"))!.error_message).toContain("[23502]")
        // The record is kept whole.
        const fatal = byEvent.get(id("fatal"))!
        expect(fatal.key).toBe("one-partition")
        expect(JSON.parse(fatal.value!)).toEqual({ label: "fatal" })
        expect(fatal.headers).toMatchObject({ id: id("fatal"), eventType: "Work", tenantId: testTenant })
      }),
    { timeout: 60_000 },
  )

  effectTest(
    "poison records (not JSON, unknown type, missing headers, bad payload) go to the DLQ with a reason and the partition moves on",
    () =>
      Effect.gen(function* () {
        yield* ensureEffectsTable
        const topic = workTopic()
        const group = uniqueId("poison-group")
        const consumer = defineConsumer({
          name: "poison-test",
          group,
          subscriptions: [
            on(topic, { Work: (p, meta) => writeEffect(group, meta.eventId, meta.tenantId, p.label) }),
          ],
        })
        const key = { key: "poison-partition" }
        const notJson = { ...workRecord({ label: "x" }, key), value: "{not json" }
        const unknownType = workRecord({ label: "x" }, { ...key, type: "NoSuchEvent" })
        const base = workRecord({ label: "x" }, key)
        const { id: _omit, ...withoutId } = base.headers
        const missingId = { ...base, headers: withoutId }
        const { tenantId: _t, ...withoutTenant } = base.headers
        const missingTenant = { ...workRecord({ label: "x" }, key), headers: withoutTenant }
        const badPayload = { ...workRecord({ label: "x" }, key), value: JSON.stringify({ label: 42 }) }
        const badId = { ...base, headers: { ...base.headers, id: "not-a-uuid" } }
        const good = workRecord({ label: "good" }, key)
        yield* produce(topic.name, [notJson, unknownType, missingId, missingTenant, badPayload, badId, good])
        yield* startMember(consumer)
        yield* eventually(Effect.map(committedCount(group, topic.name), (n) => n === 7))

        // In partition order: rows are compared record by record, whatever order they were written in.
        const dlq = [...(yield* dlqRows(group))].sort((a, b) => Number(a.offset) - Number(b.offset))
        expect(dlq.map((d) => d.error_tag)).toEqual([
          "DecodeFailed",
          "UnknownEventType",
          "MissingHeader",
          "MissingHeader",
          "DecodeFailed",
          "MalformedHeader",
        ])
        expect(dlq[0]!.error_message).toContain("not JSON")
        expect(dlq[1]!.error_message).toContain("NoSuchEvent")
        expect(dlq[2]!.error_message).toContain("'id'")
        expect(dlq[2]!.event_id).toBeNull()
        expect(dlq[3]!.error_message).toContain("'tenantId'")
        expect(dlq[4]!.error_message).toContain("label")
        expect(dlq[5]!.error_message).toContain("not-a-uuid")
        for (const d of dlq) expect(d.attempts).toBe(1)
        expect((yield* effectCounts(group)).get(good.id)).toBe(1)
      }),
    { timeout: 60_000 },
  )
})
