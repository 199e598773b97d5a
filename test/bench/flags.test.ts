import { describe, expect, test } from "bun:test"
import { spawnSync } from "bun"
import { projectRoot } from "../../src/platform/project-root.ts"

/** `bun run bench …` with no stack in its environment: a bad flag must not start one. */
const command =
  (script: string) =>
  (...args: Array<string>) => {
    const env = { ...process.env }
    delete env.DATABASE_URL
    delete env.REDIS_URL
    delete env.KAFKA_BROKERS
    const run = spawnSync([process.execPath, script, ...args], { cwd: projectRoot, env })
    return { code: run.exitCode, out: run.stdout.toString(), err: run.stderr.toString() }
  }
const bench = command("bench/run.ts")
const chaos = command("bench/chaos/run.ts")

describe("bench flags", () => {
  test("--help lists a bench's flags with their defaults and exits 0", () => {
    const { code, out } = bench("e2e", "--help")
    expect(code).toBe(0)
    expect(out).toContain("usage: bun run bench e2e")
    expect(out).toContain("--rate N")
    expect(out).toContain("(default 1000)")
    expect(out).toContain("--cpu-prof api|relay|member")
  })

  test.each([
    [["e2e", "--bogus"], "Unknown option '--bogus'"],
    [["e2e", "--rate", "fast"], "--rate takes a positive number, not 'fast'"],
    [["consumer", "--events", "0"], "--events takes a positive number, not '0'"],
    [["relay", "--modes", "wal,cdc"], "--modes takes some of wal, poll, not 'wal,cdc'"],
    [["relay", "--only", "debezium"], "--only takes one of hashinsight, pg-transactional-outbox"],
    [["api", "--duration"], "argument missing"],
  ])("%p: says what is wrong, shows the usage, exits 2, starts nothing", (args, message) => {
    const { code, out, err } = bench(...args)
    expect(code).toBe(2)
    expect(err).toContain(message)
    expect(err).toContain(`usage: bun run bench ${args[0]}`)
    expect(out + err).not.toContain("[stack]")
  })

  test("an unknown bench lists the ones there are", () => {
    const { code, err } = bench("nope")
    expect(code).toBe(2)
    expect(err).toContain("usage: bun run bench <api|consumer|e2e|relay|write-path>")
  })

  test("bun run chaos --help lists its scenarios and flags and exits 0", () => {
    const { code, out } = chaos("--help")
    expect(code).toBe(0)
    expect(out).toContain("usage: bun run chaos [scenario…] [flags]")
    expect(out).toContain("relay-kill, member-kill, api-kill, postgres, redis, brokers, stall, poison")
    expect(out).toContain("--minutes N")
    expect(out).toContain("--json")
  })

  test.each([
    [["nope"], "unknown scenario: nope"],
    [["--minutes", "0"], "--minutes takes a positive number, not '0'"],
    [["--json=yes"], "--json"],
  ])("bun run chaos %p: says what is wrong, shows the usage, exits 2, starts nothing", (args, message) => {
    const { code, out, err } = chaos(...args)
    expect(code).toBe(2)
    expect(err).toContain(message)
    expect(err).toContain("usage: bun run chaos")
    expect(out + err).not.toContain("[stack]")
  })
})
