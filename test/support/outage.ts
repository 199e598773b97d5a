/**
 * Outages of the embedded stack's PostgreSQL or Redis, for tests of what members do meanwhile, and
 * what such tests watch: a member process's `/metrics` and the health report.
 *
 * An outage hits every client of the server — this test process's own pool included, and any other
 * test running at the time. Bun runs test files one after another in one process, and the tests in
 * a file one after another, so nothing else runs meanwhile; `outage` always starts the server again
 * and waits until it accepts connections, so the tests after it find it as they expect.
 */
import { type Duration, Effect } from "effect"
import { currentEnv, type Member, stopMember, up } from "../../src/platform/stack/index.ts"

const envKey = { postgres: "DATABASE_URL", redis: "REDIS_URL" } as const

/** Whether the suite runs on the embedded `member` (not on a server the env names), which it can stop. */
export const isEmbedded = (member: "postgres" | "redis"): boolean => {
  try {
    return currentEnv({})[envKey[member]] === process.env[envKey[member]]
  } catch {
    return false
  }
}

/**
 * Stops `member`, runs `meanwhile` while it is down, and starts it again `duration` after it stopped
 * (or once `meanwhile` is done, if that takes longer) — also when `meanwhile` fails. Returns what
 * `meanwhile` returned and how long the server was down (ms).
 */
export const outage = <A, E, R>(
  member: Member,
  duration: Duration.DurationInput,
  meanwhile: Effect.Effect<A, E, R>,
) =>
  Effect.gen(function* () {
    const stoppedAt = yield* Effect.promise(() => stopMember(member)).pipe(
      Effect.zipRight(Effect.sync(Date.now)),
    )
    const seen = yield* Effect.all([meanwhile, Effect.sleep(duration)], { concurrency: 2 }).pipe(
      Effect.ensuring(Effect.promise(() => up({}))),
    )
    return { seen: seen[0], downMs: Date.now() - stoppedAt }
  })

/** The samples of `name` in a Prometheus text scrape, with their labels. */
export const samples = (text: string, name: string) =>
  text.split("\n").flatMap((line) => {
    const m = /^([a-z_]+)(?:\{(.*)\})? (\S+)$/.exec(line)
    if (!m || m[1] !== name) return []
    const labels = Object.fromEntries(
      [...(m[2] ?? "").matchAll(/([a-z_]+)="((?:[^"\\]|\\.)*)"/g)].map((l) => [l[1]!, l[2]!]),
    )
    return [{ labels, value: Number(m[3]) }]
  })

/** The value of the sample of `name` whose labels include `labels`; undefined when there is none. */
export const sampleValue = (text: string, name: string, labels: Record<string, string>) =>
  samples(text, name).find((s) => Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value

/** A process's `/metrics` text, or undefined while it does not answer. */
export const scrape = (port: number) =>
  Effect.promise(() =>
    fetch(`http://127.0.0.1:${port}/metrics`)
      .then((r) => r.text())
      .catch(() => undefined),
  )
