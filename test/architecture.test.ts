/**
 * Dependencies run one way: platform ← engine ← http, observe, ops ← hashinsight ← bin. Checked by
 * reading every import of every file under src/, so a shortcut against the direction fails here
 * instead of growing unnoticed.
 */
import { describe, expect, test } from "bun:test"
import { readFileSync } from "node:fs"
import { dirname, join, relative, resolve } from "node:path"

const src = resolve(import.meta.dir, "..", "src")

/** Each top-level folder's layer: a file may import from a lower layer or from its own folder. */
const layers: Record<string, number> = {
  platform: 0,
  engine: 1,
  http: 2,
  observe: 2,
  ops: 2,
  hashinsight: 3,
  bin: 4,
}

const files = [...new Bun.Glob("**/*.ts").scanSync(src)].map((f) => join(src, f)).sort()

/** Comments cut out, so an example in one is not taken for an import. */
const code = (file: string) =>
  readFileSync(file, "utf8")
    .replace(/\/\*[\s\S]*?\*\//g, "")
    .replace(/^\s*\/\/.*$/gm, "")

const importPattern =
  /(?:^|[\s;])(?:import|export)\s(?:[^'"]*?\sfrom\s)?["']([^"']+)["']|import\(\s*["']([^"']+)["']\s*\)/g

/** The files under src/ that `file` imports, as paths relative to src/ (packages left out). */
const importsOf = (file: string) =>
  [...code(file).matchAll(importPattern)]
    .map((m) => m[1] ?? m[2] ?? "")
    .filter((spec) => spec.startsWith("."))
    .map((spec) => relative(src, resolve(dirname(file), spec)))

const folderOf = (path: string) => path.split("/")[0] ?? ""

/** The packages `file` imports (their names, without a path inside them). */
const packagesOf = (file: string) =>
  [...code(file).matchAll(importPattern)]
    .map((m) => m[1] ?? m[2] ?? "")
    .filter((spec) => !spec.startsWith(".") && !spec.startsWith("node:"))
    .map((spec) =>
      spec
        .split("/")
        .slice(0, spec.startsWith("@") ? 2 : 1)
        .join("/"),
    )

const edges = files.flatMap((file) => importsOf(file).map((to) => ({ from: relative(src, file), to })))

const shown = (e: { from: string; to: string }) => `src/${e.from} → src/${e.to}`

describe("architecture", () => {
  test("the scan sees the imports it judges", () => {
    expect(files.length).toBeGreaterThan(100)
    expect(edges.map(shown)).toContain("src/hashinsight/miners/miners.ts → src/engine/outbox.ts")
    expect(edges.map(shown)).toContain("src/bin/api.ts → src/http/server.ts")
  })

  test("each layer imports only from layers below it: platform ← engine ← http, observe, ops ← hashinsight ← bin", () => {
    const against = edges.filter((e) => {
      const from = folderOf(e.from)
      const to = folderOf(e.to)
      if (from === to) return false
      const [a, b] = [layers[from], layers[to]]
      // A folder without a layer is a violation until it is given one; siblings (http, observe, ops)
      // know nothing of each other either.
      if (a === undefined || b === undefined) return true
      return b >= a
    })
    expect(against.map(shown)).toEqual([])
  })

  test("no service of HashInsight's (a file defining a Context.Tag) depends on the HTTP edge", () => {
    const services = files.filter(
      (f) => folderOf(relative(src, f)) === "hashinsight" && /Context\.(Generic)?Tag\b/.test(code(f)),
    )
    expect(services.length).toBeGreaterThan(0)
    const onTheEdge = edges.filter((e) => services.includes(join(src, e.from)) && folderOf(e.to) === "http")
    expect(onTheEdge.map(shown)).toEqual([])
  })

  test("the Kafka and Redis drivers are imported only under src/platform: everything else speaks through its services", () => {
    const drivers = new Set(["kafkajs", "ioredis"])
    const outside = files
      .filter((f) => folderOf(relative(src, f)) !== "platform")
      .flatMap((f) =>
        packagesOf(f)
          .filter((p) => drivers.has(p))
          .map((p) => `src/${relative(src, f)} → ${p}`),
      )
    expect(outside).toEqual([])
    expect(files.filter((f) => packagesOf(f).includes("kafkajs")).length).toBeGreaterThan(0)
  })

  /** src/platform/stack/ (a single stack.ts before it was split). */
  const devStack = /^platform\/stack(\/|\.ts$)/
  test("only entry points use the dev stack: runtime code (the migrator, the supervisor) does not import it", () => {
    const users = edges.filter(
      (e) => devStack.test(e.to) && !devStack.test(e.from) && folderOf(e.from) !== "bin",
    )
    expect(users.map(shown)).toEqual([])
    expect(edges.map(shown)).toContain("src/bin/main.ts → src/platform/stack/index.ts")
  })
})
