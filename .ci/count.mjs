// Prints `N passed, N failed` from a JUnit report and exits non-zero when anything failed or the
// run itself failed (a setup error that left no report counts as one failure).
import { existsSync, readFileSync } from "node:fs"

const [file, runStatus = "0"] = process.argv.slice(2)
let passed = 0
let failed = 0
if (file && existsSync(file)) {
  const xml = readFileSync(file, "utf8")
  const top = /<testsuites\b[^>]*>/.exec(xml)?.[0] ?? ""
  const attr = (name) => Number(new RegExp(`\\b${name}="(\\d+)"`).exec(top)?.[1] ?? 0)
  const tests = attr("tests")
  failed = attr("failures") + attr("errors")
  passed = tests - failed - attr("skipped")
}
if (Number(runStatus) !== 0 && failed === 0) failed = 1
if (passed === 0 && failed === 0) failed = 1
console.log(`${passed} passed, ${failed} failed`)
process.exit(failed > 0 ? 1 : 0)
