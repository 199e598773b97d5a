/**
 * The fault schedule's randomness: a seeded PRNG (mulberry32), so `--seed S` replays the same
 * choices of victims, moments and modes. The moments still land on a loaded machine's clock, so a
 * replay is the same plan, not the same interleaving.
 */
export interface Rng {
  /** In [0, 1). */
  readonly next: () => number
  /** An integer in [min, max]. */
  readonly between: (min: number, max: number) => number
  readonly pick: <A>(items: ReadonlyArray<A>) => A
  readonly chance: (p: number) => boolean
}

export const seeded = (seed: number): Rng => {
  let state = seed >>> 0
  const next = () => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
  const between = (min: number, max: number) => min + Math.floor(next() * (max - min + 1))
  return {
    next,
    between,
    pick: (items) => items[Math.floor(next() * items.length)]!,
    chance: (p) => next() < p,
  }
}
