/**
 * `BEGIN` and `SAVEPOINT` travel with the statement after them. Neither answers anything a caller
 * reads, yet node-postgres waits a whole round trip for each: a tenant write (`BEGIN; set_config`,
 * claim, `SAVEPOINT`, insert, outbox, complete, `COMMIT`) paid seven round trips where five carry
 * something. Deferred, such a statement is held on its connection and sent in front of the next
 * statement in the same write, as one extended-protocol pipeline ending in one Sync:
 *
 *     Parse/Bind/Execute "BEGIN", Parse/Bind/Execute "SELECT set_config(…)",
 *     Parse?/Bind/Describe/Execute <the statement>, Sync
 *
 * PostgreSQL runs them in order and skips the rest after an error up to the Sync, so nothing runs
 * outside what the caller asked for: a failed `BEGIN` never lets the statement run on its own. The
 * statement answers as if sent alone; an error of a held statement is that statement's error. A
 * parameterless statement that follows (COMMIT, ROLLBACK TO SAVEPOINT …) is sent with the held text
 * as one simple query instead, and answers only its own results.
 *
 * Until it is sent a held statement has done nothing: a connection returned to its pool with one
 * still held (no statement followed it) has no open transaction, so the pool drops what it holds
 * (`dropHeld`) rather than let the next borrower's statement open one.
 */
import Pg from "pg"

/** What a held statement answers its caller at once: no rows, as `BEGIN` and `SAVEPOINT` do. */
const heldResult = (command: string) =>
  ({ command, rowCount: null, oid: 0, rows: [], fields: [] }) as unknown as Pg.QueryResult

const deferrable = /^\s*(BEGIN|SAVEPOINT)\b/i

/** Statements of a simple-query text, split at semicolons outside quotes. */
const statementsOf = (text: string): Array<string> => {
  const out: Array<string> = []
  let start = 0
  let quote: string | undefined
  for (let i = 0; i < text.length; i++) {
    const c = text[i]
    if (quote !== undefined) {
      if (c === quote) quote = undefined
    } else if (c === "'" || c === '"') quote = c
    else if (c === ";") {
      out.push(text.slice(start, i))
      start = i + 1
    }
  }
  out.push(text.slice(start))
  return out.map((s) => s.trim()).filter((s) => s.length > 0)
}

const held = Symbol("heldStatements")

interface Holding {
  [held]?: Array<string>
}

type Callback = (err: Error | null | undefined, result?: unknown) => void

interface Connection {
  parse(config: { text: string; name: string; types: ReadonlyArray<number> }): void
  bind(config: { portal: string; statement: string; values: ReadonlyArray<unknown> }): void
  execute(config: { portal: string; rows: number }): void
}

interface Submittable {
  name?: string
  text?: string
  callback?: Callback
  _result?: { _types?: unknown }
  submit(connection: Connection): Error | null
  handleRowDescription(msg: unknown): void
  handleDataRow(msg: unknown): void
  handleCommandComplete(msg: unknown, connection: Connection): void
  handleEmptyQuery(connection: Connection): void
  handleError(err: Error, connection: Connection): void
  handleReadyForQuery(connection: Connection): void
  handlePortalSuspended(connection: Connection): void
  handleCopyInResponse(connection: Connection): void
  handleCopyData(msg: unknown, connection: Connection): void
}

/**
 * An extended-protocol query with held statements in front of it in the same pipeline. The held
 * statements are sent unnamed without Describe, so they answer ParseComplete, BindComplete, maybe
 * DataRows and one CommandComplete each; those are consumed here and the rest goes to the query.
 * Its `name` shows only once they are past: node-postgres records a named statement as parsed on
 * ParseComplete, and a held statement's ParseComplete must not count for it.
 */
class Pipelined implements Submittable {
  #left: number

  constructor(
    readonly prefix: ReadonlyArray<string>,
    readonly inner: Submittable,
  ) {
    this.#left = prefix.length
  }

  get name() {
    return this.#left === 0 ? this.inner.name : undefined
  }
  get text() {
    return this.inner.text
  }
  get callback() {
    return this.inner.callback
  }
  set callback(cb: Callback | undefined) {
    this.inner.callback = cb
  }
  get _result() {
    return this.inner._result
  }

  submit(connection: Connection) {
    for (const text of this.prefix) {
      connection.parse({ text, name: "", types: [] })
      connection.bind({ portal: "", statement: "", values: [] })
      connection.execute({ portal: "", rows: 0 })
    }
    return this.inner.submit(connection)
  }
  handleRowDescription(msg: unknown) {
    if (this.#left === 0) this.inner.handleRowDescription(msg)
  }
  handleDataRow(msg: unknown) {
    if (this.#left === 0) this.inner.handleDataRow(msg)
  }
  handleCommandComplete(msg: unknown, connection: Connection) {
    if (this.#left > 0) this.#left--
    else this.inner.handleCommandComplete(msg, connection)
  }
  handleEmptyQuery(connection: Connection) {
    if (this.#left > 0) this.#left--
    else this.inner.handleEmptyQuery(connection)
  }
  handleError(err: Error, connection: Connection) {
    this.inner.handleError(err, connection)
  }
  handleReadyForQuery(connection: Connection) {
    this.inner.handleReadyForQuery(connection)
  }
  handlePortalSuspended(connection: Connection) {
    this.inner.handlePortalSuspended(connection)
  }
  handleCopyInResponse(connection: Connection) {
    this.inner.handleCopyInResponse(connection)
  }
  handleCopyData(msg: unknown, connection: Connection) {
    this.inner.handleCopyData(msg, connection)
  }
}

export type Query = (this: Pg.Client, config: unknown, values?: unknown, callback?: unknown) => unknown

const isEmpty = (values: unknown) =>
  values === undefined || typeof values === "function" || (Array.isArray(values) && values.length === 0)

/**
 * `query` (node-postgres's signature) with `BEGIN` and `SAVEPOINT` held for the next statement.
 * `send` is the query that reaches the wire.
 */
export const holdingQuery = (send: Query): Query =>
  function holding(config, values, callback) {
    const self = this as Pg.Client & Holding
    const cb = (typeof values === "function" ? values : callback) as Callback | undefined
    const submittable = typeof config === "object" && config !== null && "submit" in config
    if (cb === undefined && !submittable)
      return new Promise((resolve, reject) =>
        holding.call(self, config, values, (err: Error | null | undefined, result: unknown) =>
          err ? reject(err) : resolve(result),
        ),
      )
    if (typeof config === "string" && isEmpty(values) && deferrable.test(config)) {
      self[held] = [...(self[held] ?? []), config]
      cb?.(null, heldResult(config.trim().split(/\s/, 1)[0]!.toUpperCase()))
      return undefined
    }
    const prefix = self[held]
    if (prefix === undefined) return send.call(self, config, values, callback)
    self[held] = undefined
    if (cb === undefined) {
      // A submittable of its own (a cursor): the held text goes first, queued in order; should it
      // fail, the transaction it opens is failed too, or there is none and the cursor runs alone.
      ;(send.call(self, prefix.join("; ")) as Promise<unknown>).catch(() => {})
      return send.call(self, config, values, callback)
    }
    if (typeof config === "string" && isEmpty(values)) {
      // Both simple: one text; the caller sees only its own statements' results.
      const skip = prefix.reduce((n, text) => n + statementsOf(text).length, 0)
      return send.call(
        self,
        `${prefix.join("; ")}; ${config}`,
        (err: Error | null | undefined, result: unknown) => {
          if (!Array.isArray(result)) return cb(err, result)
          const own = result.slice(skip)
          cb(err, own.length === 1 ? own[0] : own)
        },
      )
    }
    const inner = new Pg.Query(
      config as Pg.QueryConfig,
      Array.isArray(values) && values.length > 0 ? (values as []) : undefined,
      cb,
    )
    return send.call(self, new Pipelined(prefix.flatMap(statementsOf), inner as unknown as Submittable))
  }

/** For the pool's `release`: what a connection still holds was never sent; it is dropped. */
export const dropHeld = (client: Pg.PoolClient) => {
  ;(client as Pg.PoolClient & Holding)[held] = undefined
}
