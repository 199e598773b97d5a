/**
 * The docs cite code and tests by path and name; this keeps those citations true. Every path under
 * src/, test/, migrations/ or docs/ named in docs/*.md must exist; every test quoted as
 * `test/….test.ts`: "name" must be a test of that file; every name listed after a file as
 * `src/….ts` · `a`, `b.c` must occur in that file.
 */
import { describe, expect, test } from "bun:test"
import { existsSync, readFileSync } from "node:fs"
import { join } from "node:path"
import { projectRoot } from "../../src/platform/project-root.ts"

const docs = ["docs/architecture.md", "docs/engine.md"]
const text = (path: string) => readFileSync(join(projectRoot, path), "utf8")

const cited = docs.flatMap((doc) => {
  const markdown = text(doc)
  const paths = [...markdown.matchAll(/`((?:src|test|migrations|docs)\/[^`\s]*)`/g)].map((m) => m[1]!)
  const tests = [...markdown.matchAll(/`(test\/[^`\s]+\.test\.ts)`: "([^"]+)"/g)].map((m) => ({
    file: m[1]!,
    name: m[2]!,
  }))
  const names = [...markdown.matchAll(/`(src\/[^`\s]+\.ts)` · ((?:`[^`]+`(?:, )?)+)/g)].flatMap((m) =>
    [...m[2]!.matchAll(/`([^`]+)`/g)].map((n) => ({ file: m[1]!, name: n[1]! })),
  )
  return [{ doc, paths, tests, names }]
})

describe("docs citations", () => {
  test("every path the docs cite exists", () => {
    const all = cited.flatMap((c) => c.paths.map((path) => ({ doc: c.doc, path })))
    expect(all.length).toBeGreaterThan(50)
    expect(all.filter((c) => !existsSync(join(projectRoot, c.path)))).toEqual([])
  })

  test("every test the docs quote is a test of the file they name", () => {
    const all = cited.flatMap((c) => c.tests.map((t) => ({ doc: c.doc, ...t })))
    expect(all.length).toBeGreaterThan(30)
    const quoted = (t: { file: string; name: string }) =>
      [`"${t.name}"`, `\`${t.name}\``].some((literal) => text(t.file).includes(literal))
    expect(all.filter((t) => !existsSync(join(projectRoot, t.file)) || !quoted(t))).toEqual([])
  })

  test("every function the docs say enforces a guarantee is in the file they name", () => {
    const all = cited.flatMap((c) => c.names.map((n) => ({ doc: c.doc, ...n })))
    expect(all.length).toBeGreaterThan(30)
    const occurs = (n: { file: string; name: string }) =>
      n.name.split(".").every((part) => new RegExp(`\\b${part}\\b`).test(text(n.file)))
    expect(all.filter((n) => !existsSync(join(projectRoot, n.file)) || !occurs(n))).toEqual([])
  })
})
