/**
 * `bun run schemas check|snapshot`: the compatibility gate of the declared event schemas against the
 * snapshot committed under `schemas/` (one JSON file per topic), and its update after an intended
 * change. `check` exits 1 naming each event type, version and field that would break records
 * already written; a compatible change passes and is listed, to be snapshotted. The topics are
 * handed in; `--topics` reads those a module exports as `topics` instead (another application's,
 * or a test's).
 */
import { resolve } from "node:path"
import { CliConfig, Command, HelpDoc, Options, Usage, ValidationError } from "@effect/cli"
import { FileSystem } from "@effect/platform"
import { Console, Effect, Option, Schema } from "effect"
import { formatIncompatibility, incompatibilities } from "../../engine/schema-compat.ts"
import { type JsonSchema, registrySchemas, type TopicSchemas } from "../../engine/schema-export.ts"
import type { Topic } from "../../engine/topic.ts"

export class SchemasIncompatible extends Schema.TaggedError<SchemasIncompatible>()("SchemasIncompatible", {
  count: Schema.Number,
  dir: Schema.String,
}) {
  override get message() {
    return `${this.count} breaking change(s) against the snapshot in ${this.dir}: keep the old shape as a version and declare the new one with an upcast (eventVersions(v1).next(v2, upcast)); run \`bun run schemas snapshot\` only if no record of the old shape exists anywhere`
  }
}

const JsonSchemaDocument = Schema.declare(
  (u): u is JsonSchema => typeof u === "object" && u !== null && !Array.isArray(u),
  { identifier: "JsonSchema" },
)

const SnapshotFile = Schema.parseJson(
  Schema.Struct({
    topic: Schema.String,
    aggregatetype: Schema.String,
    events: Schema.Record({
      key: Schema.String,
      value: Schema.Struct({
        latest: Schema.Number,
        versions: Schema.Record({ key: Schema.String, value: JsonSchemaDocument }),
      }),
    }),
  }),
)

const fileOf = (dir: string, topic: string) => `${dir}/${topic}.json`
const snapshotFile = /^events\..+\.json$/
const render = (t: TopicSchemas) => `${JSON.stringify(t, null, 2)}\n`

const readSnapshot = (dir: string) =>
  Effect.gen(function* () {
    const fs = yield* FileSystem.FileSystem
    if (!(yield* fs.exists(dir))) return []
    const names = (yield* fs.readDirectory(dir)).filter((n) => snapshotFile.test(n)).sort()
    return yield* Effect.forEach(names, (name) =>
      Effect.flatMap(fs.readFileString(`${dir}/${name}`), Schema.decodeUnknown(SnapshotFile)),
    )
  })

const dirOption = Options.directory("dir").pipe(
  Options.withPseudoName("DIR"),
  Options.withDescription("where the snapshot lives"),
  Options.withDefault("schemas"),
)
const topicsOption = Options.file("topics").pipe(
  Options.withPseudoName("MODULE"),
  Options.withDescription("check the topics this module exports as `topics` instead of the application's"),
  Options.optional,
)

export const schemasCli = (declaredTopics: ReadonlyArray<Topic>) => {
  const declared = (module: Option.Option<string>) =>
    Option.match(module, {
      onNone: () => Effect.succeed(registrySchemas(declaredTopics)),
      onSome: (path) =>
        Effect.promise(() => import(resolve(path))).pipe(
          Effect.map((m: { topics: ReadonlyArray<Topic> }) => registrySchemas(m.topics)),
        ),
    })

  const check = Command.make("check", { dir: dirOption, topics: topicsOption }, (a) =>
    Effect.gen(function* () {
      const snapshot = yield* readSnapshot(a.dir)
      const now = yield* declared(a.topics)
      const breaking = incompatibilities(snapshot, now)
      for (const i of breaking) yield* Console.log(`breaking: ${formatIncompatibility(i)}`)
      if (breaking.length > 0) return yield* new SchemasIncompatible({ count: breaking.length, dir: a.dir })
      const before = new Map(snapshot.map((t) => [t.topic, render(t)]))
      const changed = now.filter((t) => before.get(t.topic) !== render(t)).map((t) => t.topic)
      const gone = snapshot.filter((t) => !now.some((n) => n.topic === t.topic)).map((t) => t.topic)
      const types = now.reduce((n, t) => n + Object.keys(t.events).length, 0)
      if (changed.length === 0 && gone.length === 0)
        return yield* Console.log(`schemas: ${now.length} topics, ${types} event types match ${a.dir}/`)
      yield* Console.log(
        `schemas: compatible with ${a.dir}/; not snapshotted yet: ${[...changed, ...gone].join(", ")} (run \`bun run schemas snapshot\`)`,
      )
    }),
  ).pipe(
    Command.withDescription("fail (exit 1) on a declared schema change that breaks records already written"),
  )

  const snapshot = Command.make("snapshot", { dir: dirOption, topics: topicsOption }, (a) =>
    Effect.gen(function* () {
      const fs = yield* FileSystem.FileSystem
      const now = yield* declared(a.topics)
      yield* fs.makeDirectory(a.dir, { recursive: true })
      for (const t of now) yield* fs.writeFileString(fileOf(a.dir, t.topic), render(t))
      const keep = new Set(now.map((t) => `${t.topic}.json`))
      for (const name of yield* fs.readDirectory(a.dir))
        if (snapshotFile.test(name) && !keep.has(name)) yield* fs.remove(`${a.dir}/${name}`)
      yield* Console.log(`schemas: wrote ${now.length} topics to ${a.dir}/`)
    }),
  ).pipe(Command.withDescription("write the declared schemas as the new snapshot, after an intended change"))

  const missing = "missing command: one of check, snapshot"
  const root = Command.make("schemas", {}, () =>
    Console.error(missing).pipe(
      Effect.zipRight(Effect.fail(ValidationError.missingSubcommand(HelpDoc.p(missing)))),
    ),
  ).pipe(
    Command.withDescription("event schema compatibility gate and JSON Schema snapshot"),
    Command.withSubcommands([check, snapshot]),
  )
  const usage = [
    "usage: bun run schemas <command> [flags]   (--help on any command for details)",
    ...[Command.getUsage(check), Command.getUsage(snapshot)].flatMap((u) =>
      Usage.enumerate(u, CliConfig.defaultConfig).map(
        (span) => `  ${HelpDoc.toAnsiText(HelpDoc.p(span)).trim()}`,
      ),
    ),
  ].join("\n")
  return { run: Command.run(root, { name: "bun run schemas", version: "0.1.0" }), usage }
}
