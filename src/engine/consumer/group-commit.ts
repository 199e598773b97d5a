/**
 * Group commit across partitions: the chunks that partitions hand in while a transaction is running
 * go together in the next one. kafkajs calls `eachBatch` per partition, and under a steady trickle
 * each batch holds an event or two, so one transaction per batch would cost a dozen round trips per
 * event. A run starts once its oldest chunk has waited `lingerMs` (Kafka producers' linger.ms;
 * 0: at once) or a transaction in progress is done, whichever is later: a little latency that,
 * under load, buys fewer and fuller transactions. Each caller's promise settles when the
 * transaction holding its chunk is done, so every partition still finishes its events in order
 * before taking the next.
 */
interface Waiting<A> {
  readonly items: ReadonlyArray<A>
  readonly at: number
  readonly resolve: () => void
  readonly reject: (error: unknown) => void
}

export const makeGroupCommit = <A>(
  run: (items: ReadonlyArray<A>) => Promise<void>,
  maxItems: number,
  lingerMs = 0,
) => {
  const waiting: Array<Waiting<A>> = []
  let running = false

  const drain = async () => {
    running = true
    try {
      while (waiting.length > 0) {
        const left = lingerMs - (performance.now() - waiting[0]!.at)
        if (left > 0) await new Promise((resolve) => setTimeout(resolve, left))
        // Whole chunks only, as many as fit in `maxItems` (at least one).
        const taken: Array<Waiting<A>> = []
        let count = 0
        while (waiting.length > 0 && (taken.length === 0 || count + waiting[0]!.items.length <= maxItems)) {
          const next = waiting.shift()!
          taken.push(next)
          count += next.items.length
        }
        try {
          await run(taken.length === 1 ? taken[0]!.items : taken.flatMap((w) => w.items))
          for (const w of taken) w.resolve()
        } catch (error) {
          for (const w of taken) w.reject(error)
        }
      }
    } finally {
      running = false
    }
  }

  return (items: ReadonlyArray<A>) =>
    new Promise<void>((resolve, reject) => {
      waiting.push({ items, at: performance.now(), resolve, reject })
      if (!running) void drain()
    })
}
