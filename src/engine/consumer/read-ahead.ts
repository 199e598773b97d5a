/**
 * Read-ahead per partition. kafkajs fetches a partition's next records only after `eachBatch` for
 * the previous ones has returned, and one fetch brings what the broker hands out for it: on the
 * librdkafka mock always a single record batch, i.e. whatever the producer sent together — an
 * event or two under a steady trickle. Processing inside `eachBatch` therefore ran one transaction
 * per event or two however far behind the member was.
 *
 * A lane takes a fetched batch and lets `eachBatch` return at once while it holds fewer than
 * `capacity` records, so fetching goes on while earlier records are processed. Its worker takes
 * everything queued, in order, as its next piece of work: the further behind the member is, the
 * bigger its transactions, and an idle member still starts on the first record at once. Offsets
 * are committed from what the worker finished (offsets.ts), never from what was fetched.
 *
 * A batch fetched before a rebalance took its partition away, or before a seek, is stale: it is
 * dropped when its turn comes (its records are the new owner's to process). Another member may
 * meanwhile be processing records this one already took; the inbox makes that a skipped duplicate.
 */

export interface Fetched<A> {
  readonly items: ReadonlyArray<A>
  /** True once the batch must not be processed any more (partition revoked, consumer stopping). */
  readonly stale: () => boolean
}

interface Lane<A> {
  readonly queue: Array<Fetched<A>>
  queued: number
  /** Being worked on, or waiting in line for a slot. */
  working: boolean
  /** `push` calls waiting for room. */
  readonly waiting: Array<() => void>
}

export const makeReadAhead = <A>(
  /** Processes one piece of work in order; checks `stale` between its units. */
  work: (key: string, items: ReadonlyArray<A>, stale: () => boolean) => Promise<void>,
  options: {
    /** Records a lane holds before `push` makes its caller wait. */
    readonly capacity: number
    /** Lanes working at once; the others wait their turn, taken in order. */
    readonly concurrency: number
    /**
     * `work` failed: its records were fetched past but not finished, so the caller must start over
     * from its committed offsets (recreate the consumer). The lanes are closed by then.
     */
    readonly onError: (error: unknown) => void
  },
) => {
  const lanes = new Map<string, Lane<A>>()
  /** Lanes with records and no worker, waiting for one of the `concurrency` slots. */
  const ready: Array<[string, Lane<A>]> = []
  let closed = false
  let busy = 0
  const idleWaiters: Array<() => void> = []

  const startNext = () => {
    while (!closed && busy < options.concurrency && ready.length > 0) {
      const [key, lane] = ready.shift()!
      void run(key, lane)
    }
    if (busy === 0) for (const resolve of idleWaiters.splice(0)) resolve()
  }

  /** One piece of work: everything the lane holds. Then, if others wait, the slot goes to them. */
  const run = async (key: string, lane: Lane<A>) => {
    busy += 1
    try {
      const taken = lane.queue.splice(0).filter((b) => !b.stale())
      lane.queued = 0
      for (const resolve of lane.waiting.splice(0)) resolve()
      if (taken.length > 0) {
        const items = taken.length === 1 ? taken[0]!.items : taken.flatMap((b) => b.items)
        await work(key, items, () => closed || taken.some((b) => b.stale()))
      }
    } catch (error) {
      void close()
      options.onError(error)
    } finally {
      busy -= 1
      if (lane.queue.length > 0 && !closed) ready.push([key, lane])
      else lane.working = false
      startNext()
    }
  }

  /**
   * Queues a fetched batch behind the lane's earlier ones; resolves once there is room for more
   * (at once unless the lane is full), so the caller may fetch again.
   */
  const push = async (key: string, batch: Fetched<A>): Promise<void> => {
    if (closed || batch.items.length === 0) return
    let lane = lanes.get(key)
    if (!lane) {
      lane = { queue: [], queued: 0, working: false, waiting: [] }
      lanes.set(key, lane)
    }
    lane.queue.push(batch)
    lane.queued += batch.items.length
    if (!lane.working) {
      lane.working = true
      ready.push([key, lane])
      startNext()
    }
    const current = lane
    while (current.queued >= options.capacity && !closed)
      await new Promise<void>((resolve) => current.waiting.push(resolve))
  }

  /**
   * Stops: nothing new is queued or started, queued records are dropped (they were never
   * committed, so they are fetched again), and the returned promise resolves once the work in
   * progress is done.
   */
  const close = () => {
    closed = true
    ready.length = 0
    for (const lane of lanes.values()) {
      lane.queue.length = 0
      lane.queued = 0
      for (const resolve of lane.waiting.splice(0)) resolve()
    }
    return busy === 0 ? Promise.resolve() : new Promise<void>((resolve) => idleWaiters.push(resolve))
  }

  return { push, close }
}
