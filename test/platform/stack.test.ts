import { afterAll, describe, expect, test } from "bun:test"
import { spawnSync } from "node:child_process"
import { mkdirSync, realpathSync, rmSync } from "node:fs"
import { join } from "node:path"
import { projectRoot } from "../../src/platform/project-root.ts"
import { pidAlive as alive } from "../../src/platform/stack/index.ts"
import { uniqueId } from "../support/ids.ts"

// A throwaway stack in its own folder, so the suite's own stack is never touched.
const dir = join(projectRoot, ".stack", uniqueId("test-stack"))
mkdirSync(dir, { recursive: true })

const cleanEnv = () => {
  const env: Record<string, string> = {}
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined) env[k] = v
  delete env.DATABASE_URL
  delete env.REDIS_URL
  delete env.KAFKA_BROKERS
  env.HASHINSIGHT_STACK_DIR = dir
  return env
}

const stack = (args: Array<string>, extra: Record<string, string> = {}) => {
  const r = spawnSync("bun", ["src/bin/stack.ts", ...args], {
    cwd: projectRoot,
    env: { ...cleanEnv(), ...extra },
    encoding: "utf8",
  })
  return { code: r.status, out: r.stdout, err: r.stderr }
}

const status = (extra: Record<string, string> = {}): Record<string, number> =>
  JSON.parse(stack(["status"], extra).out)

/** Processes whose command line mentions the throwaway stack folder (or where its PostgreSQL data lives). */
const strays = () => {
  const places = [dir, realpathSync(join(dir, "postgres"))]
  return spawnSync("ps", ["-eo", "pid,args"], { encoding: "utf8" })
    .stdout.split("\n")
    .filter((l) => places.some((p) => l.includes(p)) && !l.includes("ps -eo"))
}

afterAll(() => {
  stack(["down"])
  rmSync(realpathSync(join(dir, "postgres")), { recursive: true, force: true })
  rmSync(dir, { recursive: true, force: true })
})

describe("bun run stack", () => {
  test("up twice is a no-op, down leaves no process behind, up again comes back", () => {
    const first = stack(["up"])
    expect(first.code).toBe(0)
    expect(first.out).toMatch(
      /^DATABASE_URL=postgres:\/\/.+\nREDIS_URL=redis:\/\/.+\nKAFKA_BROKERS=127\.0\.0\.1:\d+,/,
    )
    const pids = status()
    expect(Object.keys(pids).sort()).toEqual(["kafka", "postgres", "redis"])

    const second = stack(["up"])
    expect(second.code).toBe(0)
    expect(status()).toEqual(pids)

    expect(stack(["down"]).code).toBe(0)
    for (const pid of Object.values(pids)) expect(alive(pid)).toBe(false)
    expect(strays()).toEqual([])

    expect(stack(["up"]).code).toBe(0)
    const again = status()
    expect(Object.keys(again).sort()).toEqual(["kafka", "postgres", "redis"])
    for (const pid of Object.values(again)) expect(alive(pid)).toBe(true)
  })

  test("a crashed member is restarted by the next up", () => {
    expect(stack(["up"]).code).toBe(0)
    const before = status()
    process.kill(before.redis!, "SIGKILL")
    process.kill(before.kafka!, "SIGKILL")
    Bun.sleepSync(200)
    expect(stack(["up"]).code).toBe(0)
    const after = status()
    expect(after.redis).not.toBe(before.redis)
    expect(after.kafka).not.toBe(before.kafka)
    expect(after.postgres).toBe(before.postgres!)
    expect(alive(after.redis!)).toBe(true)
  })

  test("a service named by an env var is used as-is and not started", () => {
    stack(["down"])
    const external = { REDIS_URL: "redis://example.invalid:6379" }
    const r = stack(["up"], external)
    expect(r.code).toBe(0)
    expect(r.out).toContain("REDIS_URL=redis://example.invalid:6379")
    expect(r.err).toContain("[stack] using REDIS_URL from the environment: nothing started for it")
    const pids = status(external)
    expect(pids.redis).toBeUndefined()
    expect(pids.postgres).toBeNumber()
    expect(pids.kafka).toBeNumber()
  })

  test("unknown subcommand prints usage and exits 2", () => {
    const r = stack(["sideways"])
    expect(r.code).toBe(2)
    expect(r.err).toContain("usage: bun run stack")
  })
})
