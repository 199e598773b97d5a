import { describe, expect } from "bun:test"
import { join } from "node:path"
import { Effect } from "effect"
import { passed, runChaos } from "../../bench/chaos/chaos.ts"
import { scenarioNames } from "../../bench/chaos/scenarios.ts"
import { table } from "../../bench/chaos/table.ts"
import { stackDir } from "../../src/platform/stack/index.ts"
import { effectTest } from "../support/effect.ts"

describe("bun run chaos, briefly", () => {
  effectTest(
    `every scenario (${scenarioNames.join(", ")}) on the whole platform: nothing lost, applied twice, reordered or executed twice; only 503s; the DLQ exactly the poison`,
    () =>
      Effect.gen(function* () {
        const results = yield* runChaos({
          scenarios: scenarioNames,
          secondsEach: 2,
          rate: 15,
          seed: 19,
          members: 2,
          full: false,
          logDir: join(stackDir(), "chaos", `test-${Date.now().toString(36)}`),
        })
        console.log(table(results))
        for (const r of results)
          expect({ scenario: r.scenario, problems: r.audit?.problems ?? [], passed: passed(r) }).toEqual({
            scenario: r.scenario,
            problems: [],
            passed: true,
          })
        const audited = results.filter((r) => r.audit !== undefined)
        expect(audited.every((r) => r.audit!.writesAccepted > 0 && r.audit!.eventsDelivered > 0)).toBe(true)
        const poison = results.find((r) => r.scenario === "poison")!
        expect(poison.audit?.dlqEntries).toBe(600)
      }),
    { timeout: 300_000 },
  )
})
