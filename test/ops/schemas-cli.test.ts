import { afterAll, describe, expect, test } from "bun:test"
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { registrySchemas } from "../../src/engine/schema-export.ts"
import { topics } from "../../src/hashinsight/topics.ts"
import { projectRoot } from "../../src/platform/project-root.ts"

// Inside the project, so a declaration module there resolves `effect` from its node_modules.
mkdirSync(join(projectRoot, ".test-results"), { recursive: true })
const scratch = mkdtempSync(join(projectRoot, ".test-results", "schemas-"))
afterAll(() => rmSync(scratch, { recursive: true, force: true }))

let n = 0
/** A module that declares one topic `events.gate` with the given event types (TypeScript source). */
const declaration = (events: string) => {
  const path = join(scratch, `topics-${++n}.ts`)
  writeFileSync(
    path,
    `import { Schema } from "effect"
     import { eventVersions } from "${projectRoot}/src/engine/event-versions.ts"
     import { defineTopic } from "${projectRoot}/src/engine/topic.ts"
     export const topics = [defineTopic("gate", { ${events} })]
     void eventVersions`,
  )
  return path
}

const schemas = (args: ReadonlyArray<string>) => {
  const run = Bun.spawnSync([process.execPath, join(projectRoot, "src/bin/schemas.ts"), ...args], {
    cwd: projectRoot,
    env: { ...process.env, NODE_NO_WARNINGS: "1" },
  })
  return { exitCode: run.exitCode, out: `${run.stdout.toString()}${run.stderr.toString()}` }
}

/** Snapshots `before`, then checks `after` against it. */
const gate = (before: string, after: string) => {
  const dir = mkdtempSync(join(scratch, "snapshot-"))
  const snapshot = schemas(["snapshot", "--topics", declaration(before), "--dir", dir])
  expect(snapshot).toMatchObject({ exitCode: 0 })
  return schemas(["check", "--topics", declaration(after), "--dir", dir])
}

const v1 = `Placed: Schema.Struct({ minerId: Schema.String, site: Schema.String, count: Schema.Number,
  tier: Schema.Literal("retail", "pro", "institutional") })`

describe("bun run schemas check", () => {
  test.each([
    [
      "a removed field",
      `Placed: Schema.Struct({ minerId: Schema.String, count: Schema.Number, tier: Schema.Literal("retail", "pro", "institutional") })`,
      ["events.gate Placed v1 field 'site': removed"],
    ],
    [
      "a renamed field",
      `Placed: Schema.Struct({ minerId: Schema.String, hostingSite: Schema.String, count: Schema.Number,
        tier: Schema.Literal("retail", "pro", "institutional") })`,
      [
        "events.gate Placed v1 field 'site': removed (renamed to 'hostingSite'?)",
        "events.gate Placed v1 field 'hostingSite': new required field",
      ],
    ],
    [
      "a new required field",
      `Placed: Schema.Struct({ minerId: Schema.String, site: Schema.String, count: Schema.Number,
        tier: Schema.Literal("retail", "pro", "institutional"), firmware: Schema.String })`,
      ["events.gate Placed v1 field 'firmware': new required field"],
    ],
    [
      "a narrowed type",
      `Placed: Schema.Struct({ minerId: Schema.String, site: Schema.String, count: Schema.Int,
        tier: Schema.Literal("retail", "pro", "institutional") })`,
      ["events.gate Placed v1 field 'count': narrowed type: number → integer"],
    ],
    [
      "a narrowed bound",
      `Placed: Schema.Struct({ minerId: Schema.String, site: Schema.String.pipe(Schema.maxLength(64)),
        count: Schema.Number, tier: Schema.Literal("retail", "pro", "institutional") })`,
      ["events.gate Placed v1 field 'site': narrowed length: at most any → at most 64"],
    ],
    [
      "a narrowed literal set",
      `Placed: Schema.Struct({ minerId: Schema.String, site: Schema.String, count: Schema.Number,
        tier: Schema.Literal("retail", "pro") })`,
      [`events.gate Placed v1 field 'tier': narrowed literal set: ["institutional"] no longer accepted`],
    ],
    [
      "a removed event type",
      `Other: Schema.Struct({ x: Schema.String })`,
      ["events.gate Placed: event type removed"],
    ],
  ])("fails with exit code 1 on %s, naming the event type and field", (_, after, lines) => {
    const { exitCode, out } = gate(v1, after)
    expect(exitCode).toBe(1)
    for (const line of lines) expect(out).toContain(`breaking: ${line}\n`)
    expect(out.match(/^breaking: /gm)).toHaveLength(lines.length)
    expect(out).toContain(`error: ${lines.length} breaking change(s)`)
  })

  test.each([
    [
      "an added optional field",
      `Placed: Schema.Struct({ minerId: Schema.String, site: Schema.String, count: Schema.Number,
        tier: Schema.Literal("retail", "pro", "institutional"), firmware: Schema.optional(Schema.String) })`,
    ],
    [
      "an added field with a default",
      `Placed: Schema.Struct({ minerId: Schema.String, site: Schema.String, count: Schema.Number,
        tier: Schema.Literal("retail", "pro", "institutional"),
        firmware: Schema.optionalWith(Schema.String, { default: () => "stock" }) })`,
    ],
    [
      "a widened type and literal set",
      `Placed: Schema.Struct({ minerId: Schema.String, site: Schema.NullOr(Schema.String), count: Schema.Number,
        tier: Schema.Literal("retail", "pro", "institutional", "enterprise") })`,
    ],
    [
      "a breaking change made as a new version with an upcast",
      `Placed: eventVersions(Schema.Struct({ minerId: Schema.String, site: Schema.String, count: Schema.Number,
          tier: Schema.Literal("retail", "pro", "institutional") }))
        .next(Schema.Struct({ minerId: Schema.String, hostingSiteId: Schema.String, count: Schema.Int }),
          (v1) => ({ minerId: v1.minerId, hostingSiteId: v1.site, count: Math.round(v1.count) }))`,
    ],
    ["a new event type", `${v1}, Other: Schema.Struct({ x: Schema.String })`],
  ])("passes on %s, and says the snapshot is behind", (_, after) => {
    const { exitCode, out } = gate(v1, after)
    expect(out).not.toContain("breaking")
    expect(exitCode).toBe(0)
    expect(out).toContain("not snapshotted yet: events.gate (run `bun run schemas snapshot`)")
  })

  test("an unchanged declaration matches its snapshot; bad flags print the usage and exit 2", () => {
    expect(gate(v1, v1).out).toContain("schemas: 1 topics, 1 event types match")
    const bad = schemas(["check", "--nope"])
    expect(bad.exitCode).toBe(2)
    expect(bad.out).toContain("usage: bun run schemas <command> [flags]")
  })
})

describe("the committed snapshot", () => {
  test("is exactly the declared schemas: schemas/ has one file per topic, as `snapshot` writes it", () => {
    const dir = join(projectRoot, "schemas")
    const declared = registrySchemas(topics)
    expect(readdirSync(dir).sort()).toEqual(declared.map((t) => `${t.topic}.json`).sort())
    for (const t of declared)
      expect(readFileSync(join(dir, `${t.topic}.json`), "utf8")).toBe(`${JSON.stringify(t, null, 2)}\n`)
  })
})
