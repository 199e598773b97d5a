import { describe, expect } from "bun:test"
import { Effect, Option } from "effect"
import { findMinerModel, listMinerModels } from "../../src/hashinsight/catalogue.ts"
import { withTenant } from "../../src/platform/db.ts"
import { effectTest } from "../support/effect.ts"

describe("miner catalogue", () => {
  effectTest("holds 42 models with consistent, typed specs", () =>
    Effect.gen(function* () {
      const models = yield* listMinerModels
      expect(models).toHaveLength(42)
      expect(new Set(models.map((m) => m.vendor))).toEqual(
        new Set(["Bitmain", "MicroBT", "Canaan", "IceRiver"]),
      )
      for (const m of models) {
        expect(m.id).toMatch(/^[a-z0-9]+(-[a-z0-9]+)*$/)
        expect(m.efficiencyJPerTh).toBeCloseTo(m.powerW / m.hashrateThs, 2)
        expect(m.releaseYear).toBeGreaterThanOrEqual(2016)
      }
    }),
  )

  effectTest("finds the Antminer S21 by id with its nameplate figures", () =>
    Effect.gen(function* () {
      const s21 = yield* findMinerModel("antminer-s21")
      expect(Option.getOrThrow(s21)).toEqual({
        id: "antminer-s21",
        vendor: "Bitmain",
        model: "Antminer S21",
        algorithm: "SHA-256",
        hashrateThs: 200,
        powerW: 3500,
        efficiencyJPerTh: 17.5,
        releaseYear: 2023,
      })
      expect(yield* findMinerModel("no-such-model")).toEqual(Option.none())
    }),
  )

  effectTest("is readable by the RLS-bound tenant role", () =>
    Effect.gen(function* () {
      const models = yield* withTenant(crypto.randomUUID())(listMinerModels)
      expect(models).toHaveLength(42)
    }),
  )
})
