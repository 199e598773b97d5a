/**
 * The edge renders an application's errors without knowing them: a toy API, not HashInsight's,
 * declares a domain error's problem document with `problemFace` and is served by `ApiServer`.
 */
import { describe, expect } from "bun:test"
import { HttpApi, HttpApiBuilder, HttpApiEndpoint, HttpApiGroup } from "@effect/platform"
import { SqlClient } from "@effect/sql"
import { Effect, Layer, Schema } from "effect"
import { Authentication, CurrentTenant } from "../../src/http/authentication.ts"
import { idempotentWrite, withIdempotencyKey } from "../../src/http/idempotency.ts"
import { problemFace, ServiceUnavailable, ValidationProblem } from "../../src/http/problem.ts"
import { ApiServer } from "../../src/http/server.ts"
import { freePort } from "../../src/platform/stack/index.ts"
import { effectTest } from "../support/effect.ts"
import { uniqueId } from "../support/ids.ts"
import { newTenant } from "./support.ts"

class Overdrawn extends Schema.TaggedError<Overdrawn>()("Overdrawn", { account: Schema.String }) {
  override get message() {
    return `account ${this.account} is overdrawn`
  }
}

const OverdrawnProblem = problemFace(Overdrawn, {
  slug: "overdrawn",
  status: 402,
  title: "Account overdrawn",
  description: "The account cannot cover the withdrawal",
})

class ToyGroup extends HttpApiGroup.make("toy")
  .add(
    HttpApiEndpoint.post("withdraw", "/toy/withdraw")
      .addSuccess(Schema.Struct({ ok: Schema.Boolean }), { status: 201 })
      .addError(OverdrawnProblem)
      .pipe(withIdempotencyKey),
  )
  .add(HttpApiEndpoint.get("boom", "/toy/boom").addSuccess(Schema.String))
  .middleware(Authentication) {}

// What the edge answers on every route, declared as an application declares it.
class ToyApi extends HttpApi.make("toy")
  .add(ToyGroup)
  .addError(ValidationProblem)
  .addError(ServiceUnavailable) {}

const ToyRoutes = HttpApiBuilder.group(ToyApi, "toy", (handlers) =>
  handlers
    .handle(
      "withdraw",
      () =>
        Effect.flatMap(CurrentTenant, (tenant) =>
          idempotentWrite(tenant.id, Effect.fail(new Overdrawn({ account: "a-1" }))),
        ),
      { uninterruptible: true },
    )
    .handle("boom", () => Effect.die(new Error("a bug"))),
)

const expected = JSON.stringify({
  type: "https://hashinsight.dev/problems/overdrawn",
  title: "Account overdrawn",
  status: 402,
  detail: "account a-1 is overdrawn",
  _tag: "Overdrawn",
})

describe("an application's error declared with problemFace", () => {
  effectTest(
    "is answered as its problem document, recorded under an Idempotency-Key and replayed byte for byte; a defect is a 500; the OpenAPI document declares it",
    () =>
      Effect.gen(function* () {
        const port = yield* Effect.promise(() => freePort())
        yield* Layer.build(ApiServer.layer({ api: ToyApi, routes: ToyRoutes, port }))
        const base = `http://127.0.0.1:${port}`
        const t = yield* newTenant
        const call = (path: string, init: RequestInit = {}) =>
          Effect.promise(async () => {
            const res = await fetch(`${base}${path}`, {
              ...init,
              headers: { authorization: `Bearer ${t.key}`, ...init.headers },
            })
            return { status: res.status, headers: res.headers, text: await res.text() }
          })

        const unkeyed = yield* call("/toy/withdraw", { method: "POST" })
        expect({ status: unkeyed.status, body: unkeyed.text }).toEqual({ status: 402, body: expected })
        expect(unkeyed.headers.get("content-type")).toBe("application/problem+json")

        const key = uniqueId("overdrawn")
        const first = yield* call("/toy/withdraw", { method: "POST", headers: { "idempotency-key": key } })
        const again = yield* call("/toy/withdraw", { method: "POST", headers: { "idempotency-key": key } })
        expect([first.status, first.text, first.headers.get("idempotent-replayed")]).toEqual([
          402,
          expected,
          null,
        ])
        expect([again.status, again.text, again.headers.get("idempotent-replayed")]).toEqual([
          402,
          expected,
          "true",
        ])
        const sql = yield* SqlClient.SqlClient
        expect(
          yield* sql`SELECT response_status AS status, response_body AS body FROM idempotency_records
            WHERE tenant_id = ${t.id} AND idempotency_key = ${key}`,
        ).toEqual([{ status: 402, body: expected }])

        const boom = yield* call("/toy/boom")
        expect(boom.status).toBe(500)
        expect(JSON.parse(boom.text)).toMatchObject({
          type: "https://hashinsight.dev/problems/internal",
          status: 500,
        })

        const spec = JSON.parse((yield* call("/openapi.json")).text) as {
          paths: Record<string, Record<string, { responses: Record<string, unknown> }>>
          components: { schemas: Record<string, { properties: Record<string, unknown> }> }
        }
        expect(JSON.stringify(spec.paths["/toy/withdraw"]!.post!.responses["402"])).toContain(
          '"application/problem+json":{"schema":{"$ref":"#/components/schemas/Overdrawn"}}',
        )
        expect(spec.components.schemas.Overdrawn!.properties.type).toEqual({
          type: "string",
          enum: ["https://hashinsight.dev/problems/overdrawn"],
        })
      }),
  )
})
