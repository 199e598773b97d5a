import { describe, expect } from "bun:test"
import { readFileSync } from "node:fs"
import { join } from "node:path"
import { Effect } from "effect"
import { topics } from "../../src/hashinsight/topics.ts"
import { projectRoot } from "../../src/platform/project-root.ts"
import { effectTest } from "../support/effect.ts"
import { startApi } from "./support.ts"

describe("GET /api/schemas", () => {
  effectTest(
    "serves every topic's event schemas, per version, as committed under schemas/; without a key",
    () =>
      Effect.gen(function* () {
        const api = yield* startApi()
        const reply = yield* api.call("/api/schemas")
        expect(reply.status).toBe(200)
        const body = reply.json as { versionHeader: string; topics: Array<{ topic: string }> }
        expect(body.versionHeader).toBe("eventVersion")
        expect(body.topics.map((t) => t.topic)).toEqual(topics.map((t) => t.name).sort())
        for (const t of body.topics)
          expect(t).toEqual(JSON.parse(readFileSync(join(projectRoot, "schemas", `${t.topic}.json`), "utf8")))

        const spec = (yield* api.call("/openapi.json")).json as { paths: Record<string, unknown> }
        expect(Object.keys(spec.paths)).toContain("/api/schemas")
      }),
  )
})
