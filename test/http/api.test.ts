import { describe, expect } from "bun:test"
import { Effect } from "effect"
import { effectTest } from "../support/effect.ts"
import { addMinerBody, minerAddedEvents, newTenant, startApi } from "./support.ts"

const problemType = (slug: string) => `https://hashinsight.dev/problems/${slug}`

describe("HTTP API edge", () => {
  effectTest("POST /api/miners creates the holding and its MinerAdded event; GET lists it", () =>
    Effect.gen(function* () {
      const api = yield* startApi()
      const t = yield* newTenant
      const created = yield* api.call("/api/miners", { method: "POST", key: t.key, body: addMinerBody() })
      expect(created.status).toBe(201)
      const miner = created.json as { id: string; count: number; powerPriceUsdPerKwh: number }
      expect(miner).toMatchObject({
        userId: "user-1",
        modelId: "antminer-s21",
        count: 3,
        powerPriceUsdPerKwh: 0.045,
      })
      const events = yield* minerAddedEvents(miner.id)
      expect(events).toHaveLength(1)
      expect(events[0]).toMatchObject({
        tenantId: t.id,
        payload: { minerId: miner.id, count: 3, site: "texas-1", firmware: null },
        eventVersion: 2,
      })
      const listed = yield* api.call("/api/miners?userId=user-1", { key: t.key })
      expect(listed.status).toBe(200)
      expect(listed.json).toEqual([created.json])
      const one = yield* api.call(`/api/miners/${miner.id}`, { key: t.key })
      expect(one.json).toEqual(created.json)

      // MinerAdded v2 carries the firmware given.
      const flashed = yield* api.call("/api/miners", {
        method: "POST",
        key: t.key,
        body: addMinerBody({ firmware: "braiins-os-24.03" }),
      })
      expect(flashed.json).toMatchObject({ firmware: "braiins-os-24.03" })
      expect(yield* minerAddedEvents((flashed.json as { id: string }).id)).toMatchObject([
        { payload: { firmware: "braiins-os-24.03" }, eventVersion: 2 },
      ])
    }),
  )

  effectTest("errors are problem+json with stable types, bad input is 4xx", () =>
    Effect.gen(function* () {
      const api = yield* startApi()
      const t = yield* newTenant
      const post = (body: string, headers: Record<string, string> = {}) =>
        api.call("/api/miners", { method: "POST", key: t.key, body, headers })
      const cases = [
        [yield* api.call("/api/miners"), 401, "unauthorized"],
        [yield* api.call("/api/miners", { key: "hik_not-a-key" }), 401, "unauthorized"],
        [yield* api.call("/api/nothing-here", { key: t.key }), 404, "not-found"],
        [yield* api.call("/nope"), 404, "not-found"],
        [yield* post(addMinerBody({ count: 0 })), 400, "validation"],
        [yield* post(JSON.stringify({ userId: "u" })), 400, "validation"],
        [yield* post('{"userId":'), 400, "malformed-body"],
        [yield* post(""), 400, "malformed-body"],
        [
          yield* post("userId=u", { "content-type": "application/x-www-form-urlencoded" }),
          415,
          "unsupported-media-type",
        ],
        [yield* post("x".repeat(100_000)), 413, "payload-too-large"],
        [yield* post(addMinerBody({ modelId: "no-such-model" })), 422, "unknown-model"],
        [yield* post(addMinerBody({ userId: "a\u0000b" })), 400, "validation"],
        [yield* api.call("/api/miners/not-a-uuid", { key: t.key }), 400, "validation"],
        [
          yield* api.call("/api/miners/0190a000-0000-7000-8000-000000000000", { key: t.key }),
          404,
          "not-found",
        ],
      ] as const
      for (const [reply, status, slug] of cases) {
        expect({ status: reply.status, type: (reply.json as { type?: string })?.type }).toEqual({
          status,
          type: problemType(slug),
        })
        expect(reply.headers.get("content-type")).toBe("application/problem+json")
        expect((reply.json as { status: number }).status).toBe(status)
      }
      const validation = (yield* post(addMinerBody({ count: "three" }))).json as {
        errors: Array<{ path: string }>
      }
      expect(validation.errors.map((e) => e.path)).toContain("count")
    }),
  )

  effectTest("a request with several problems is answered with all of them, each with its path", () =>
    Effect.gen(function* () {
      const api = yield* startApi()
      const t = yield* newTenant
      const post = (path: string, body: unknown) =>
        api.call(path, { method: "POST", key: t.key, body: JSON.stringify(body) })
      const pathsOf = (reply: { status: number; json: unknown }) => {
        expect(reply.status).toBe(400)
        expect((reply.json as { type: string }).type).toBe(problemType("validation"))
        return (reply.json as { errors: Array<{ path: string; message: string }> }).errors.map((e) => e.path)
      }
      // Two required fields missing: both named.
      expect(
        pathsOf(yield* post("/api/ops/market", { btcPriceUsd: 95000, blockRewardBtc: 3.125 })).sort(),
      ).toEqual(["difficulty", "feesBtcPerBlock"])
      // Missing, empty and mistyped fields at once.
      expect(pathsOf(yield* post("/api/miners", { userId: "", count: "three" })).sort()).toEqual([
        "count",
        "modelId",
        "powerPriceUsdPerKwh",
        "site",
        "userId",
      ])
      expect(pathsOf(yield* post("/api/crm/contacts", {})).length).toBeGreaterThan(1)
    }),
  )

  effectTest("serves the OpenAPI document and the docs page from the same definitions", () =>
    Effect.gen(function* () {
      const api = yield* startApi()
      const spec = (yield* api.call("/openapi.json")).json as {
        paths: Record<string, Record<string, { responses: Record<string, unknown> }>>
        components: { schemas: Record<string, unknown>; securitySchemes: Record<string, unknown> }
      }
      expect(Object.keys(spec.paths)).toEqual(
        expect.arrayContaining([
          "/api/miners",
          "/api/miners/{id}",
          "/api/miners/{id}/retire",
          "/api/miner-models",
          "/api/miner-models/{id}",
          "/api/portfolio/{userId}",
          "/api/forecasts",
          "/api/ops/market",
          "/api/ops/incidents",
          "/api/treasury/transactions",
          "/api/crm/accounts",
          "/api/crm/contacts",
        ]),
      )
      expect(Object.keys(spec.paths["/api/miners/{id}"]!.patch!.responses)).toEqual(
        expect.arrayContaining(["200", "400", "401", "404", "409", "422", "503"]),
      )
      expect(Object.keys(spec.paths["/api/crm/contacts"]!.post!.responses)).toContain("422")
      expect(Object.keys(spec.paths["/api/miners"]!.post!.responses)).toEqual(
        expect.arrayContaining(["201", "400", "401", "409", "422", "503"]),
      )
      for (const schema of [
        "AddMiner",
        "ChangeMiner",
        "MinerModel",
        "Portfolio",
        "Forecasts",
        "PostMarketData",
      ])
        expect(spec.components.schemas).toHaveProperty(schema)
      expect(JSON.stringify(spec)).toContain("application/problem+json")
      const docs = yield* api.call("/docs")
      expect(docs.status).toBe(200)
      expect(docs.headers.get("content-type")).toContain("text/html")
    }),
  )
})
