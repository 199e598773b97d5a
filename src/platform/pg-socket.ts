/**
 * The socket node-postgres talks through. `pg` writes every protocol message of a query (Parse,
 * Bind, Describe, Execute, Sync) as a separate `write`, and Bun's `net.Socket` sends each one on
 * its own, with no `writev` to gather them, a large share of the API's CPU (README, Benchmarks).
 * This socket gathers what is written in one tick and sends it as one buffer, in the same order.
 */
import { Socket } from "node:net"

type WriteCallback = (error?: Error | null) => void

export class CoalescingSocket extends Socket {
  #pending: Array<Uint8Array> = []

  override write(chunk: unknown, encoding?: unknown, callback?: unknown): boolean {
    // Anything but a plain buffer (pg's end message comes with a callback) goes out as is, after
    // what was gathered before it.
    if (!(chunk instanceof Uint8Array) || encoding !== undefined || callback !== undefined) {
      this.#flush()
      return super.write(
        chunk as Uint8Array,
        encoding as BufferEncoding,
        callback as WriteCallback | undefined,
      )
    }
    if (this.#pending.push(chunk) === 1) queueMicrotask(() => this.#flush())
    return true
  }

  override connect(...args: Array<unknown>): this {
    ;(super.connect as (...a: Array<unknown>) => this)(...args)
    // `net.Socket#connect` puts its own `write` on the instance (undoing a past `writeAfterFIN`),
    // which would hide ours: remove it again.
    delete (this as { write?: unknown }).write
    return this
  }

  override end(...args: Array<unknown>): this {
    this.#flush()
    return (super.end as (...a: Array<unknown>) => this)(...args)
  }

  #flush() {
    const pending = this.#pending
    if (pending.length === 0) return
    this.#pending = []
    super.write(pending.length === 1 ? pending[0]! : Buffer.concat(pending))
  }
}

export const coalescingSocket = () => new CoalescingSocket()
