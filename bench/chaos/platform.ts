/**
 * The platform as it deploys, for the chaos run: the API, two relays (one active, one standby on
 * the same leadership lock) and `members` members of each consumer group, every one a process of
 * its own running the same entry points as `bun run services`, against the run's database, the
 * run's Kafka (the fault cluster) and a CRM webhook sink of the run's own.
 */
import { mkdirSync } from "node:fs"
import { Effect, Schedule } from "effect"
import { type ConsumerName, consumerNames } from "../../src/hashinsight/consumers/index.ts"
import { freePort } from "../../src/platform/stack/index.ts"
import { makeProc, type Proc } from "./processes.ts"

export type RelayMode = "wal" | "poll"

export interface PlatformOptions {
  readonly databaseUrl: string
  readonly kafkaBrokers: string
  readonly webhookUrl: string
  readonly slot: string
  readonly members: number
  readonly logDir: string
}

export interface Member {
  readonly consumer: ConsumerName
  readonly proc: Proc
}

export interface Platform {
  readonly url: string
  readonly api: Proc
  readonly relays: ReadonlyArray<Proc>
  readonly members: ReadonlyArray<Member>
  /** The relay's argv in `mode`. */
  readonly relayArgv: (mode: RelayMode) => ReadonlyArray<string>
  /** Waits until one relay is active and every other living one is standby (or active: a takeover). */
  readonly relaysSettled: Effect.Effect<void, string>
  readonly apiUp: Effect.Effect<void, string>
}

export const startPlatform = (options: PlatformOptions) =>
  Effect.gen(function* () {
    mkdirSync(options.logDir, { recursive: true })
    const port = yield* Effect.promise(freePort)
    const base = {
      ...process.env,
      DATABASE_URL: options.databaseUrl,
      KAFKA_BROKERS: options.kafkaBrokers,
      CRM_WEBHOOK_URL: options.webhookUrl,
      NODE_NO_WARNINGS: "1",
      // What the suite's members use on the mock: the default 20 ms spins idle members, and the
      // run has a dozen processes on a small machine.
      KAFKA_FETCH_MAX_WAIT_MS: "100",
    }
    const api = makeProc(
      "api",
      ["src/bin/api.ts"],
      () => ({ ...base, PORT: String(port), LOG_LEVEL: "WARN" }),
      options.logDir,
    )
    const relayArgv = (mode: RelayMode) => [
      "src/bin/relay.ts",
      "--mode",
      mode,
      "--slot",
      options.slot,
      "--standby-poll",
      "200",
      "--poll-interval",
      "100",
    ]
    const relays = ["relay-a", "relay-b"].map((name) =>
      makeProc(name, relayArgv("wal"), () => ({ ...base, LOG_LEVEL: "Info" }), options.logDir),
    )
    const members: Array<Member> = []
    for (const consumer of consumerNames)
      for (let i = 0; i < options.members; i++) {
        const metricsPort = yield* Effect.promise(freePort)
        members.push({
          consumer,
          proc: makeProc(
            `${consumer}-${i + 1}`,
            ["src/bin/consumer.ts", consumer],
            () => ({ ...base, LOG_LEVEL: "WARN", METRICS_PORT: String(metricsPort) }),
            options.logDir,
          ),
        })
      }
    const all = [api, ...relays, ...members.map((m) => m.proc)]
    yield* Effect.addFinalizer(() =>
      Effect.forEach(all, (p) => p.signal("SIGCONT").pipe(Effect.zipRight(p.stop("SIGTERM"))), {
        concurrency: "unbounded",
        discard: true,
      }),
    )

    const url = `http://127.0.0.1:${port}`
    const apiUp = Effect.tryPromise(() => fetch(`${url}/openapi.json`)).pipe(
      Effect.filterOrFail((r) => r.ok),
      Effect.retry(Schedule.spaced("100 millis").pipe(Schedule.upTo("60 seconds"))),
      Effect.mapError(() => `the API did not answer on ${url}`),
      Effect.asVoid,
    )
    const relaysSettled = Effect.gen(function* () {
      const living = relays.filter((r) => r.alive())
      const states = yield* Effect.forEach(living, (r) => r.waitFor(["relay active", "relay standby"]))
      if (!states.includes("relay active"))
        yield* Effect.firstSuccessOf(living.map((r) => r.waitFor(["relay active"])))
    })

    yield* api.start()
    yield* relays[0]!.start()
    yield* relays[0]!.waitFor(["relay active"])
    yield* relays[1]!.start()
    for (const m of members) yield* m.proc.start()
    yield* apiUp
    yield* relaysSettled
    return { url, api, relays, members, relayArgv, relaysSettled, apiUp } satisfies Platform
  })
