import { describe, expect, test } from "bun:test"
import { makeGroupCommit } from "../../src/engine/consumer/group-commit.ts"

/** A transaction stand-in that records what it was given and finishes when told to. */
const recorder = () => {
  const runs: Array<ReadonlyArray<string>> = []
  const finish: Array<(error?: unknown) => void> = []
  const run = (items: ReadonlyArray<string>) =>
    new Promise<void>((resolve, reject) => {
      runs.push(items)
      finish.push((error) => (error === undefined ? resolve() : reject(error)))
    })
  return { runs, finish, run }
}

/** A chunk whose partition is still ours. */
const live = () => false

const tick = () => new Promise((r) => setTimeout(r, 0))

describe("group commit", () => {
  test("the first chunk starts at once; chunks handed in meanwhile share the next run, in order", async () => {
    const { runs, finish, run } = recorder()
    const submit = makeGroupCommit(run, 100)
    const first = submit(["p0-1"], live)
    await tick()
    expect(runs).toEqual([["p0-1"]])
    const second = submit(["p1-1", "p1-2"], live)
    const third = submit(["p2-1"], live)
    await tick()
    expect(runs.length).toBe(1)
    finish[0]!()
    await first
    await tick()
    expect(runs[1]).toEqual(["p1-1", "p1-2", "p2-1"])
    finish[1]!()
    await Promise.all([second, third])
  })

  test("a run never exceeds the item limit, but takes a bigger chunk whole when it comes alone", async () => {
    const { runs, finish, run } = recorder()
    const submit = makeGroupCommit(run, 3)
    const all = [
      submit(["a"], live),
      submit(["b", "c"], live),
      submit(["d", "e"], live),
      submit(["f", "g", "h", "i"], live),
    ]
    for (let i = 0; i < 4; i++) {
      await tick()
      finish[i]?.()
    }
    await Promise.all(all)
    expect(runs).toEqual([["a"], ["b", "c"], ["d", "e"], ["f", "g", "h", "i"]])
  })

  test("a failed run rejects every chunk in it and the next run still happens", async () => {
    const { runs, finish, run } = recorder()
    const submit = makeGroupCommit(run, 100)
    const first = submit(["x"], live)
    const grouped = Promise.allSettled([submit(["y"], live), submit(["z"], live)])
    await tick()
    finish[0]!()
    await first
    await tick()
    finish[1]!(new Error("deadlock"))
    const outcomes = await grouped
    expect(outcomes.map((o) => o.status)).toEqual(["rejected", "rejected"])
    expect(runs[1]).toEqual(["y", "z"])
    const fourth = submit(["w"], live)
    await tick()
    expect(runs[2]).toEqual(["w"])
    finish[2]!()
    await fourth
  })

  test("with a linger, a run waits that long from its oldest chunk for others to join", async () => {
    const { runs, finish, run } = recorder()
    const submit = makeGroupCommit(run, 100, 40)
    const first = submit(["a"], live)
    await new Promise((r) => setTimeout(r, 10))
    const second = submit(["b"], live)
    await tick()
    expect(runs.length).toBe(0)
    await new Promise((r) => setTimeout(r, 60))
    expect(runs).toEqual([["a", "b"]])
    finish[0]!()
    await Promise.all([first, second])
    // A chunk that already waited out the linger behind a running transaction does not wait again.
    const third = submit(["c"], live)
    await new Promise((r) => setTimeout(r, 60))
    expect(runs[1]).toEqual(["c"])
    const fourth = submit(["d"], live)
    await new Promise((r) => setTimeout(r, 60))
    finish[1]!()
    await third
    await tick()
    expect(runs[2]).toEqual(["d"])
    finish[2]!()
    await fourth
  })

  test("a shared run is told to stop only once every chunk in it is stale, and each caller gets its result", async () => {
    const stops: Array<() => boolean> = []
    const finish: Array<() => void> = []
    const submit = makeGroupCommit(
      (_items: ReadonlyArray<string>, stop: () => boolean) =>
        new Promise<string>((resolve) => {
          stops.push(stop)
          finish.push(() => resolve(stop() ? "abandoned" : "done"))
        }),
      100,
    )
    const blocker = submit(["x"], live)
    await tick()
    let aStale = false
    let bStale = false
    const a = submit(["a"], () => aStale)
    const b = submit(["b"], () => bStale)
    finish[0]!()
    expect(await blocker).toBe("done")
    await tick()
    expect(stops.length).toBe(2)
    aStale = true
    expect(stops[1]!()).toBe(false)
    bStale = true
    expect(stops[1]!()).toBe(true)
    finish[1]!()
    expect(await Promise.all([a, b])).toEqual(["abandoned", "abandoned"])
  })
})
