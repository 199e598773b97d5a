/**
 * Group commit across partitions: the chunks that partitions hand in while a transaction is running
 * go together in the next one. kafkajs calls `eachBatch` per partition, and under a steady trickle
 * each batch holds an event or two, so one transaction per batch would cost a dozen round trips per
 * event. A run starts once its oldest chunk has waited `lingerMs` (Kafka producers' linger.ms;
 * 0: at once) or a transaction in progress is done, whichever is later: a little latency that,
 * under load, buys fewer and fuller transactions. Each caller's promise settles when the
 * transaction holding its chunk is done, so every partition still finishes its events in order
 * before taking the next; it settles with what `run` returned. A shared run is told to stop (`stale`)
 * only once every chunk in it is stale: the others still have to be done.
 */
interface Waiting<A, R> {
  readonly items: ReadonlyArray<A>
  readonly stale: () => boolean
  readonly at: number
  readonly resolve: (result: R) => void
  readonly reject: (error: unknown) => void
}

export const makeGroupCommit = <A, R>(
  run: (items: ReadonlyArray<A>, stale: () => boolean) => Promise<R>,
  maxItems: number,
  lingerMs = 0,
) => {
  const waiting: Array<Waiting<A, R>> = []
  let running = false

  const drain = async () => {
    running = true
    try {
      while (waiting.length > 0) {
        const left = lingerMs - (performance.now() - waiting[0]!.at)
        if (left > 0) await new Promise((resolve) => setTimeout(resolve, left))
        // Whole chunks only, as many as fit in `maxItems` (at least one).
        const taken: Array<Waiting<A, R>> = []
        let count = 0
        while (waiting.length > 0 && (taken.length === 0 || count + waiting[0]!.items.length <= maxItems)) {
          const next = waiting.shift()!
          taken.push(next)
          count += next.items.length
        }
        try {
          const result = await run(taken.length === 1 ? taken[0]!.items : taken.flatMap((w) => w.items), () =>
            taken.every((w) => w.stale()),
          )
          for (const w of taken) w.resolve(result)
        } catch (error) {
          for (const w of taken) w.reject(error)
        }
      }
    } finally {
      running = false
    }
  }

  return (items: ReadonlyArray<A>, stale: () => boolean) =>
    new Promise<R>((resolve, reject) => {
      waiting.push({ items, stale, at: performance.now(), resolve, reject })
      if (!running) void drain()
    })
}
