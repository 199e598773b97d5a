/**
 * `bun run lag [--json] [--watch] [--interval N]`: consumer lag per group, topic and partition (in
 * offsets and seconds) with its level, from one admin client. Lag in seconds needs the end offsets'
 * history (lag.ts): a single run has only its own sample, so it shows `≥0s` where records wait;
 * `--watch` builds the history as it goes. The groups are handed in by the application.
 */
import { CliConfig, Command, HelpDoc, Options, Usage } from "@effect/cli"
import { Console, Duration, Effect, Schedule, Schema } from "effect"
import { Kafka } from "../platform/kafka.ts"
import { table } from "../platform/table.ts"
import { type LagSample, makeLagSampler, type PartitionLag, type WatchedGroup } from "./lag.ts"

const seconds = (p: Pick<PartitionLag, "lagSeconds" | "lowerBound">) =>
  `${p.lowerBound ? "≥" : ""}${p.lagSeconds.toFixed(1)}s`

/** The sample as a table, a line per partition, then a line per group and the total. */
export const formatLag = (s: LagSample): string => {
  const rows = s.groups.flatMap((g) => g.partitions.map((p) => ({ group: g.group, ...p })))
  const partitions = table(rows, [
    ["GROUP", (r) => r.group],
    ["TOPIC", (r) => r.topic],
    ["PARTITION", (r) => r.partition],
    ["END", (r) => r.end],
    ["COMMITTED", (r) => (r.committed === null ? "-" : r.committed)],
    ["LAG", (r) => r.lag],
    ["SECONDS", seconds],
    ["STALLED", (r) => (r.stalled ? "yes" : "")],
  ])
  const groups = table(s.groups, [
    ["GROUP", (g) => g.group],
    ["LAG", (g) => g.lag],
    [
      "SECONDS",
      (g) => seconds({ lagSeconds: g.lagSeconds, lowerBound: g.partitions.some((p) => p.lowerBound) }),
    ],
    ["LEVEL", (g) => g.level],
    ["MEMBERS", (g) => (g.members === null ? "?" : g.members)],
  ])
  return [
    `Consumer lag at ${new Date(s.at).toISOString()} (warning at 1,000, critical at 10,000)`,
    "",
    partitions,
    "",
    groups,
    "",
    `Total lag: ${s.total} (${s.level})`,
  ].join("\n")
}

const json = Options.boolean("json").pipe(Options.withDescription("print JSON instead of tables"))
const watch = Options.boolean("watch").pipe(Options.withDescription("sample again every --interval seconds"))
const interval = Options.integer("interval").pipe(
  Options.withPseudoName("N"),
  Options.withDescription("seconds between samples with --watch"),
  Options.withSchema(Schema.Int.pipe(Schema.positive())),
  Options.withDefault(5),
)

/** The CLI over these groups, and its usage line. */
export const lagCli = (groups: ReadonlyArray<WatchedGroup>) => {
  const command = Command.make("lag", { json, watch, interval }, (flags) =>
    Effect.gen(function* () {
      const admin = yield* (yield* Kafka).admin
      const sampler = makeLagSampler({ groups })
      const once = Effect.flatMap(sampler.sample(admin), (s) =>
        Console.log(flags.json ? JSON.stringify(s, null, flags.watch ? undefined : 2) : formatLag(s)),
      )
      if (!flags.watch) return yield* once
      yield* Effect.repeat(
        once.pipe(Effect.zipRight(flags.json ? Effect.void : Console.log(""))),
        Schedule.spaced(Duration.seconds(flags.interval)),
      )
    }).pipe(Effect.scoped, Effect.provide(Kafka.layerConfig)),
  ).pipe(Command.withDescription("consumer lag per group, topic and partition"))
  const usage = [
    "usage: bun run lag [--json] [--watch] [--interval N]",
    ...Usage.enumerate(Command.getUsage(command), CliConfig.defaultConfig).map(
      (span) => `  ${HelpDoc.toAnsiText(HelpDoc.p(span)).trim()}`,
    ),
  ].join("\n")
  return { run: Command.run(command, { name: "bun run lag", version: "0.1.0" }), usage }
}
