/**
 * `bun run dlq stats|list|show <id>|replay`: the operator commands, declared with @effect/cli. Each
 * handler builds only the services it needs — nothing connects before the arguments parsed, and
 * only a real replay connects to Kafka. The retry policies `stats` shows are handed in.
 */
import { Args, CliConfig, Command, HelpDoc, Options, Usage, ValidationError } from "@effect/cli"
import { Console, Effect, Layer, Option, Schema } from "effect"
import { Kafka } from "../../platform/kafka.ts"
import { OperatorDb } from "./database.ts"
import { replayStatuses } from "./entry.ts"
import {
  entryDetail,
  formatDryRun,
  formatList,
  formatReplaySummary,
  formatShow,
  formatStats,
} from "./format.ts"
import type { GroupRetryPolicy } from "./policies.ts"
import { stderrProgress } from "./progress.ts"
import { DlqQueries } from "./queries.ts"
import { DlqReplay } from "./replay.ts"
import { replayable, type Selection } from "./selection.ts"
import { DlqStats } from "./stats.ts"

const PositiveInt = Schema.Int.pipe(Schema.positive())
const positive = (name: string, pseudo: string, description: string) =>
  Options.integer(name).pipe(
    Options.withPseudoName(pseudo),
    Options.withDescription(description),
    Options.withSchema(PositiveInt),
  )

const json = Options.boolean("json").pipe(
  Options.withDescription("print JSON (for scripts) instead of tables"),
)
const topic = Options.text("topic").pipe(
  Options.withPseudoName("T"),
  Options.withDescription("only this topic"),
  Options.optional,
)
const group = Options.text("group").pipe(
  Options.withPseudoName("G"),
  Options.withDescription("only this consumer group"),
  Options.optional,
)
const hours = positive("hours", "N", "only entries that failed within the last N hours").pipe(
  Options.optional,
)

const print = (asJson: boolean, data: unknown, text: string) =>
  Console.log(asJson ? JSON.stringify(data, null, 2) : text)

const queriesLayer = DlqQueries.layer.pipe(Layer.provide(OperatorDb.layerConfig))

const stats = (policies: ReadonlyArray<GroupRetryPolicy>) =>
  Command.make(
    "stats",
    {
      hours: positive("hours", "N", "window for the DLQ rate, in hours").pipe(Options.withDefault(24)),
      json,
    },
    (a) =>
      Effect.gen(function* () {
        const report = yield* (yield* DlqStats).report(a.hours)
        yield* print(a.json, { ...report, retryPolicies: policies }, formatStats(report, policies))
      }).pipe(Effect.provide(DlqStats.layer.pipe(Layer.provide(OperatorDb.layerConfig)))),
  ).pipe(
    Command.withDescription("DLQ counts by topic, group and error; replay states; oldest pending; DLQ rate"),
  )

const list = Command.make(
  "list",
  {
    topic,
    group,
    hours,
    status: Options.choice("status", replayStatuses).pipe(
      Options.withDescription("only entries in this replay status"),
      Options.optional,
    ),
    limit: positive("limit", "N", "at most N entries").pipe(Options.withDefault(50)),
    after: positive("after", "ID", "page on: only entries with an id greater than this").pipe(
      Options.optional,
    ),
    json,
  },
  (a) =>
    Effect.gen(function* () {
      const selection: Selection = {
        topic: Option.getOrUndefined(a.topic),
        group: Option.getOrUndefined(a.group),
        hours: Option.getOrUndefined(a.hours),
        statuses: Option.toArray(a.status),
        afterId: Option.getOrUndefined(a.after),
      }
      const entries = yield* (yield* DlqQueries).list(selection, a.limit)
      yield* print(a.json, entries, formatList(entries, a.limit))
    }).pipe(Effect.provide(queriesLayer)),
).pipe(Command.withDescription("DLQ entries, oldest first"))

const show = Command.make(
  "show",
  { id: Args.integer({ name: "id" }).pipe(Args.withSchema(PositiveInt)), json },
  (a) =>
    Effect.gen(function* () {
      const entry = yield* (yield* DlqQueries).get(a.id)
      yield* print(a.json, entryDetail(entry), formatShow(entry))
    }).pipe(Effect.provide(queriesLayer)),
).pipe(Command.withDescription("one DLQ entry whole: record, decoded value, headers, error, replay history"))

const replay = Command.make(
  "replay",
  {
    topic,
    group,
    hours,
    limit: positive("limit", "N", "replay at most N entries").pipe(Options.withDefault(1000)),
    // Text, not integer: @effect/cli 0.77 re-validates a lone repeated integer as text and rejects it.
    id: Options.text("id").pipe(
      Options.withPseudoName("ID"),
      Options.withDescription("replay this entry, whatever its status (repeatable)"),
      Options.repeated,
      Options.withSchema(Schema.mutable(Schema.Array(Schema.compose(Schema.NumberFromString, PositiveInt)))),
    ),
    dryRun: Options.boolean("dry-run").pipe(
      Options.withDescription("list what would be replayed; change nothing"),
    ),
    json,
  },
  (a) =>
    Effect.gen(function* () {
      const selection = replayable({
        topic: Option.getOrUndefined(a.topic),
        group: Option.getOrUndefined(a.group),
        hours: Option.getOrUndefined(a.hours),
        ids: a.id,
      })
      const queries = yield* DlqQueries
      if (a.dryRun) {
        const entries = yield* queries.list(selection, a.limit)
        return yield* print(a.json, { dryRun: true, entries }, formatDryRun(entries))
      }
      const total = Math.min(a.limit, yield* queries.count(selection))
      const progress = stderrProgress()
      const summary = yield* Effect.flatMap(DlqReplay, (r) =>
        r.run(selection, a.limit, total, progress.update),
      ).pipe(
        Effect.ensuring(progress.finish),
        Effect.provide(DlqReplay.layer.pipe(Layer.provide(Kafka.layerConfig))),
      )
      yield* print(a.json, summary, formatReplaySummary(summary))
    }).pipe(Effect.provide(DlqQueries.layer.pipe(Layer.provideMerge(OperatorDb.layerConfig)))),
).pipe(Command.withDescription("send DLQ entries back to the group that failed them"))

const missingCommand = "missing command: one of stats, list, show, replay"

/** The CLI over these retry policies, and its usage: one line per subcommand, from their declarations. */
export const dlqCli = (policies: ReadonlyArray<GroupRetryPolicy>) => {
  const statsCommand = stats(policies)
  const subcommands = [statsCommand, list, show, replay] as const
  const root = Command.make("dlq", {}, () =>
    Console.error(missingCommand).pipe(
      Effect.zipRight(Effect.fail(ValidationError.missingSubcommand(HelpDoc.p(missingCommand)))),
    ),
  ).pipe(
    Command.withDescription("inspect and replay the dead-letter queue"),
    Command.withSubcommands(subcommands),
  )
  const usage = [
    "usage: bun run dlq <command> [flags]   (--help on any command for details)",
    ...[
      Command.getUsage(statsCommand),
      Command.getUsage(list),
      Command.getUsage(show),
      Command.getUsage(replay),
    ].flatMap((u) =>
      Usage.enumerate(u, CliConfig.defaultConfig).map(
        (span) => `  ${HelpDoc.toAnsiText(HelpDoc.p(span)).trim()}`,
      ),
    ),
  ].join("\n")
  return { run: Command.run(root, { name: "bun run dlq", version: "0.1.0" }), usage }
}
