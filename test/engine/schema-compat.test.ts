import { describe, expect, test } from "bun:test"
import { JSONSchema, Schema } from "effect"
import { eventVersions } from "../../src/engine/event-versions.ts"
import { formatIncompatibility, incompatibilities, schemaProblems } from "../../src/engine/schema-compat.ts"
import { registrySchemas } from "../../src/engine/schema-export.ts"
import { defineTopic } from "../../src/engine/topic.ts"

const problems = (prev: Schema.Schema.AnyNoContext, next: Schema.Schema.AnyNoContext) =>
  schemaProblems(JSONSchema.make(prev), JSONSchema.make(next)).map((p) => `${p.field}: ${p.problem}`)

describe("schema compatibility", () => {
  test("names the path of a change inside nested objects, arrays and unions", () => {
    const Site = (id: Schema.Schema.AnyNoContext) => Schema.Struct({ site: Schema.Struct({ id }) })
    expect(problems(Site(Schema.String), Site(Schema.Int))).toEqual([
      "site.id: narrowed type: string → integer",
    ])
    expect(
      problems(
        Schema.Struct({ tags: Schema.Array(Schema.String) }),
        Schema.Struct({ tags: Schema.Array(Schema.Literal("a")) }),
      ),
    ).toEqual(['tags[]: narrowed literal set: any value → ["a"]'])
    expect(
      problems(Schema.Struct({ note: Schema.NullOr(Schema.String) }), Schema.Struct({ note: Schema.String })),
    ).toEqual(["note: narrowed type: null is no longer accepted"])
  })

  test("bounds: tighter is breaking, looser is not; integer → number is a widening", () => {
    const count = (s: Schema.Schema.AnyNoContext) => Schema.Struct({ count: s })
    expect(
      problems(count(Schema.Int.pipe(Schema.nonNegative())), count(Schema.Int.pipe(Schema.positive()))),
    ).toEqual(["count: narrowed lower bound: >= 0 → > 0"])
    expect(
      problems(count(Schema.Int.pipe(Schema.positive())), count(Schema.Int.pipe(Schema.nonNegative()))),
    ).toEqual([])
    expect(problems(count(Schema.Int.pipe(Schema.positive())), count(Schema.Number))).toEqual([])
    expect(
      problems(
        count(Schema.Number.pipe(Schema.lessThanOrEqualTo(10))),
        count(Schema.Number.pipe(Schema.lessThan(10))),
      ),
    ).toEqual(["count: narrowed upper bound: <= 10 → < 10"])
  })

  test("an optional field made required breaks; a required one made optional does not", () => {
    expect(
      problems(Schema.Struct({ a: Schema.optional(Schema.String) }), Schema.Struct({ a: Schema.String })),
    ).toEqual(["a: optional field made required"])
    expect(
      problems(Schema.Struct({ a: Schema.String }), Schema.Struct({ a: Schema.optional(Schema.String) })),
    ).toEqual([])
  })

  test("versions: the snapshot's versions must stay readable; later versions are new; a version or topic removed breaks", () => {
    const V1 = Schema.Struct({ site: Schema.String })
    const V2 = Schema.Struct({ siteId: Schema.String })
    const withV2 = defineTopic("c", { E: eventVersions(V1).next(V2, (v) => ({ siteId: v.site })) })
    const snapshot = registrySchemas([withV2])
    expect(incompatibilities(registrySchemas([defineTopic("c", { E: V1 })]), snapshot)).toEqual([])
    expect(
      incompatibilities(snapshot, registrySchemas([defineTopic("c", { E: V1 })])).map(formatIncompatibility),
    ).toEqual(["events.c E v2: version removed"])
    // v2 edited in place instead of declaring v3.
    const edited = defineTopic("c", {
      E: eventVersions(V1).next(Schema.Struct({ id: Schema.String }), (v) => ({ id: v.site })),
    })
    expect(incompatibilities(snapshot, registrySchemas([edited])).map(formatIncompatibility)).toEqual([
      "events.c E v2 field 'siteId': removed (renamed to 'id'?)",
      "events.c E v2 field 'id': new required field",
    ])
    expect(incompatibilities(snapshot, []).map(formatIncompatibility)).toEqual(["events.c E: topic removed"])
  })
})
