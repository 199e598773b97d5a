/**
 * The HashInsight consumer registry, and `afterUnit` — the hook the consumers use to drop cached
 * reads only once their transaction has committed.
 */
import { describe, expect, test } from "bun:test"
import { SqlClient } from "@effect/sql"
import { Deferred, Effect } from "effect"
import { defineConsumer, on } from "../../src/engine/consumer/definition.ts"
import { Fatal } from "../../src/engine/consumer/errors.ts"
import { makeParser } from "../../src/engine/consumer/records.ts"
import { decodeRetryPolicy } from "../../src/engine/consumer/retry.ts"
import { versionHeader } from "../../src/engine/record.ts"
import { afterUnit } from "../../src/hashinsight/consumers/after-unit.ts"
import { consumers } from "../../src/hashinsight/consumers/index.ts"
import { minerTopic } from "../../src/hashinsight/topics.ts"
import {
  dlqRows,
  ensureEffectsTable,
  eventually,
  produce,
  startMember,
  workRecord,
  workTopic,
  writeEffect,
} from "../support/consumer-fixtures.ts"
import { effectTest } from "../support/effect.ts"
import { uniqueId } from "../support/ids.ts"

describe("consumer registry", () => {
  test("every consumer name runs its contract group with a valid retry policy", () => {
    expect(Object.fromEntries(Object.entries(consumers).map(([name, d]) => [name, d.group]))).toEqual({
      portfolio: "portfolio-recalc-group",
      intel: "intel-group",
      "crm-sync": "crm-sync-group",
    })
    for (const d of Object.values(consumers)) expect(decodeRetryPolicy(d.retry)).toEqual(d.retry)
  })
})

describe("afterUnit", () => {
  effectTest(
    "runs once the handler's transaction has committed (or the event is dead-lettered), on a connection of its own",
    () =>
      Effect.gen(function* () {
        yield* ensureEffectsTable
        const sql = yield* SqlClient.SqlClient
        const topic = workTopic()
        const group = uniqueId("after-unit")
        const seen = new Map<string, Deferred.Deferred<number>>()
        const rowsOf = (eventId: string) =>
          Effect.map(
            sql<{ n: number }>`SELECT count(*)::int AS n FROM consumer_test_effects
                               WHERE consumer_group = ${group} AND event_id = ${eventId}`,
            (rows) => rows[0]!.n,
          )
        const consumer = defineConsumer({
          name: "after-unit",
          group,
          retry: { maxAttempts: 1, baseDelayMs: 0, factor: 1, capMs: 0, jitter: 0 },
          subscriptions: [
            on(topic, {
              Work: (p, meta) =>
                Effect.gen(function* () {
                  yield* writeEffect(group, meta.eventId, meta.tenantId, p.label)
                  // Inside the transaction nobody else sees the row yet; afterwards everybody does.
                  yield* afterUnit(
                    Effect.flatMap(rowsOf(meta.eventId), (n) => Deferred.succeed(seen.get(meta.eventId)!, n)),
                  )
                  yield* Effect.sleep("200 millis")
                  if (p.label === "fail") return yield* new Fatal({ message: "refused" })
                }),
            }),
          ],
        })
        const ok = workRecord({ label: "ok" })
        const failing = workRecord({ label: "fail" })
        for (const r of [ok, failing]) seen.set(r.id, yield* Deferred.make<number>())
        yield* produce(topic.name, [ok, failing])
        yield* startMember(consumer)
        // The committed event's row was visible to the hook's own connection.
        expect(yield* Deferred.await(seen.get(ok.id)!)).toBe(1)
        // The failed one ran the hook only after its rollback: no row.
        expect(yield* Deferred.await(seen.get(failing.id)!)).toBe(0)
        yield* eventually(Effect.map(dlqRows(group), (rows) => rows.length === 1))
      }),
    { timeout: 60_000 },
  )
})

describe("MinerAdded versions", () => {
  const holding = {
    minerId: "0190f0a4-0000-7000-8000-00000000a001",
    userId: "user-1",
    modelId: "antminer-s21",
    count: 2,
    site: "texas-1",
    powerPriceUsdPerKwh: 0.05,
  }
  const record = (payload: object, version: string | undefined) => ({
    topic: minerTopic.name,
    partition: 0,
    offset: "0",
    key: Buffer.from(holding.minerId),
    value: Buffer.from(JSON.stringify(payload)),
    headers: {
      id: crypto.randomUUID(),
      eventType: "MinerAdded",
      tenantId: crypto.randomUUID(),
      ...(version === undefined ? {} : { [versionHeader]: version }),
    },
  })

  test("one written before v2 (no version header, as Debezium relayed it) reaches the portfolio and intel handlers with no firmware", () => {
    for (const consumer of [consumers.portfolio!, consumers.intel!]) {
      const parse = makeParser(consumer)
      for (const old of [record(holding, undefined), record(holding, "1")]) {
        const parsed = parse(old)
        expect(parsed._tag).toBe("Ready")
        expect(parsed._tag === "Ready" && parsed.payload).toEqual({ ...holding, firmware: null })
      }
      const current = parse(record({ ...holding, firmware: "braiins-os" }, "2"))
      expect(current._tag === "Ready" && current.payload).toEqual({ ...holding, firmware: "braiins-os" })
    }
  })
})
