import { describe, expect } from "bun:test"
import { Effect, Ref } from "effect"
import { defineConsumer, on } from "../../src/engine/consumer/definition.ts"
import { Fatal } from "../../src/engine/consumer/errors.ts"
import type { DlqStatsReport } from "../../src/ops/dlq/stats.ts"
import { migrate } from "../../src/platform/migrator.ts"
import {
  dlqRows,
  effectCounts,
  ensureEffectsTable,
  eventually,
  produce,
  startMember,
  workRecord,
  workTopic,
  writeEffect,
} from "../support/consumer-fixtures.ts"
import { scratchDatabase, withClient } from "../support/database.ts"
import { effectTest } from "../support/effect.ts"
import { uniqueId } from "../support/ids.ts"
import { cli, cliJson } from "./dlq-fixtures.ts"

interface Entry {
  readonly id: number
  readonly eventId: string
  readonly replayStatus: string
  readonly value: unknown
  readonly history: ReadonlyArray<unknown>
  readonly lastReplayError: string | null
}

describe("dlq end to end through Kafka and a consumer group", () => {
  effectTest(
    "events a handler fails fatally show in stats/list/show; after the fix a replay processes each once and marks it replayed",
    () =>
      Effect.gen(function* () {
        // A database of its own, so the acceptance's unfiltered `replay --hours 6 --limit 50` selects
        // exactly this test's entries.
        const db = yield* scratchDatabase
        yield* migrate().pipe(withClient(db.url))
        const env = { DATABASE_URL: db.url }
        yield* Effect.scoped(scenario(env)).pipe(withClient(db.url))
      }),
    { timeout: 120_000 },
  )
})

const scenario = (env: Record<string, string>) =>
  Effect.gen(function* () {
    yield* ensureEffectsTable
    const topic = workTopic()
    const group = uniqueId("dlq-e2e")
    const bystander = uniqueId("dlq-e2e-bystander")
    const broken = yield* Ref.make(new Set(["bad-1", "bad-2", "worse"]))
    const consumer = defineConsumer({
      name: "dlq-e2e",
      group,
      subscriptions: [
        on(topic, {
          Work: (p, meta) =>
            Effect.gen(function* () {
              if ((yield* Ref.get(broken)).has(p.label))
                return yield* new Fatal({ message: `cannot handle ${p.label}` })
              yield* writeEffect(group, meta.eventId, meta.tenantId, p.label)
            }),
        }),
      ],
    })
    // Another group on the same topic: replays addressed to `group` must not reach it.
    const other = defineConsumer({
      name: "dlq-e2e-bystander",
      group: bystander,
      subscriptions: [
        on(topic, { Work: (p, meta) => writeEffect(bystander, meta.eventId, meta.tenantId, p.label) }),
      ],
    })
    const records = ["ok-1", "bad-1", "ok-2", "bad-2", "worse"].map((label) => workRecord({ label }))
    const [ok1, bad1, ok2, bad2, worse] = records as [
      (typeof records)[0],
      (typeof records)[0],
      (typeof records)[0],
      (typeof records)[0],
      (typeof records)[0],
    ]
    yield* produce(topic.name, records)
    yield* startMember(consumer)
    yield* startMember(other)
    yield* eventually(Effect.map(dlqRows(group), (rows) => rows.length === 3))
    yield* eventually(Effect.map(effectCounts(bystander), (c) => c.size === 5))
    yield* eventually(Effect.map(effectCounts(group), (c) => c.size === 2))

    // Operators see them.
    const before = yield* cliJson<DlqStatsReport>(["stats"], env)
    expect(before.breakdown.filter((r) => r.consumerGroup === group)).toEqual([
      {
        topic: topic.name,
        consumerGroup: group,
        errorTag: "Fatal",
        total: 3,
        pending: 3,
        replaying: 0,
        replayed: 0,
        failed: 0,
        occurrences: 3,
      },
    ])
    expect(before.windowByGroup.find((g) => g.consumerGroup === group)).toEqual({
      consumerGroup: group,
      dlq: 3,
      processed: 2,
      rate: 3 / 5,
    })
    const listed = yield* cliJson<ReadonlyArray<Entry>>(["list", "--group", group], env)
    expect(listed).toHaveLength(3)
    const shown = yield* cliJson<Entry>(["show", String(listed.find((e) => e.eventId === bad1.id)!.id)], env)
    expect(shown.value).toEqual({ label: "bad-1" })

    // Fix the handler for two of the three, then replay.
    yield* Ref.set(broken, new Set(["worse"]))
    const replay = yield* cli(["replay", "--hours", "6", "--limit", "50"], env)
    expect(replay.code).toBe(0)
    expect(replay.stdout).toContain("Replayed 3 entries; 0 could not be sent.")

    yield* eventually(
      Effect.map(dlqRows(group), (rows) =>
        rows.every((r) => r.replay_status === (r.event_id === worse.id ? "failed" : "replayed")),
      ),
    )
    const counts = yield* effectCounts(group)
    for (const r of [ok1, bad1, ok2, bad2]) expect(counts.get(r.id)).toBe(1)
    expect(counts.has(worse.id)).toBe(false)

    // The one that failed again is the same row, with its earlier failure in the history.
    const rows = yield* dlqRows(group)
    expect(rows).toHaveLength(3)
    const again = yield* cliJson<Entry>(["show", rows.find((r) => r.event_id === worse.id)!.id], env)
    expect(again).toMatchObject({ replayStatus: "failed", lastReplayError: "Fatal: cannot handle worse" })
    expect(again.history).toHaveLength(1)

    // Sending a replayed entry once more (explicit id) has no second effect: the inbox has it.
    const replayedId = rows.find((r) => r.event_id === bad1.id)!.id
    const forced = yield* cli(["replay", "--id", replayedId], env)
    expect(forced.code).toBe(0)
    yield* eventually(
      Effect.map(dlqRows(group), (rs) => rs.find((r) => r.id === replayedId)?.replay_status === "replayed"),
    )
    yield* Effect.sleep("500 millis")
    expect((yield* effectCounts(group)).get(bad1.id)).toBe(1)
    // The bystander group processed each event once and ignored every replay.
    const theirs = yield* effectCounts(bystander)
    expect([...theirs.values()]).toEqual([1, 1, 1, 1, 1])

    const after = yield* cliJson<DlqStatsReport>(["stats"], env)
    expect(after.breakdown.filter((r) => r.consumerGroup === group)).toEqual([
      {
        topic: topic.name,
        consumerGroup: group,
        errorTag: "Fatal",
        total: 3,
        pending: 0,
        replaying: 0,
        replayed: 2,
        failed: 1,
        occurrences: 3,
      },
    ])
  })
