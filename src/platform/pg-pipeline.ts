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
 * parameterless statement that follows (ROLLBACK TO SAVEPOINT …) is sent with the held text as one
 * simple query instead, and answers only its own results.
 *
 * Only texts of exactly these forms are held, each statement alone or `;`-separated: `BEGIN`,
 * `SAVEPOINT <name>`, and `SELECT set_config('…', '…', true|false)[, set_config(…)]` after one of
 * them, with no `'` or `;` inside the literals and no comments — what the transactions of
 * `@effect/sql` and `withTenant` send. Anything else, `BEGIN; INSERT …` included, is sent as it is.
 *
 * A transaction's end (`COMMIT`, `ROLLBACK`) after held statements: a held `SAVEPOINT` changes
 * nothing there and is dropped, so the end always runs, even in a failed transaction (sent together
 * it would be skipped after the savepoint's error, and the connection would go back to its pool
 * inside the failed transaction). A transaction whose `BEGIN` is still held never started, so its
 * end is answered without a round trip.
 *
 * Until it is sent a held statement has done nothing: a connection returned to its pool with one
 * still held (no statement followed it) has no open transaction, so the pool drops what it holds
 * (`dropHeld`) rather than let the next borrower's statement open one.
 */
import Pg from "pg"

/** What a held statement answers its caller at once: no rows, as `BEGIN` and `SAVEPOINT` do. */
const heldResult = (command: string) =>
  ({ command, rowCount: null, oid: 0, rows: [], fields: [] }) as unknown as Pg.QueryResult

const literal = "'[^';]*'"
const setConfig = `set_config\\(${literal}, ${literal}, (true|false)\\)`
/** The statements a held text may consist of; the first opens a transaction or a savepoint. */
const opening = [/^BEGIN$/i, /^SAVEPOINT [A-Za-z_][A-Za-z0-9_]*$/i]
const following = [...opening, new RegExp(`^SELECT ${setConfig}(, ${setConfig})*$`, "i")]
const transactionEnd = /^\s*(COMMIT|ROLLBACK|END|ABORT)\s*$/i

/** The statements of `text` when it is one to hold, else undefined. */
const holdable = (text: string): ReadonlyArray<string> | undefined => {
  // No literal of an accepted form contains `;`, so splitting at every `;` is exact for them.
  const statements = text
    .split(";")
    .map((s) => s.trim())
    .filter((s) => s !== "")
  const [first, ...rest] = statements
  if (first === undefined || !opening.some((r) => r.test(first))) return undefined
  return rest.every((s) => following.some((r) => r.test(s))) ? statements : undefined
}

const held = Symbol("heldStatements")

interface Holding {
  [held]?: ReadonlyArray<string>
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
  binary?: boolean
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
    /** The caller's per-query read timeout, which node-postgres reads off what it is given. */
    readonly query_timeout: unknown,
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
  get binary() {
    return this.inner.binary
  }
  set binary(binary: boolean | undefined) {
    this.inner.binary = binary
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

interface ConfigObject {
  readonly text?: unknown
  readonly name?: unknown
  readonly values?: unknown
  readonly callback?: unknown
  readonly submit?: unknown
  readonly query_timeout?: unknown
}

const heldAnswer = (statement: string) => heldResult(statement.split(" ", 1)[0]!.toUpperCase())

/**
 * `query` (node-postgres's signature) with `BEGIN` and `SAVEPOINT` held for the next statement.
 * `send` is the query that reaches the wire.
 */
export const holdingQuery = (send: Query): Query =>
  function holding(config, values, callback) {
    const self = this as Pg.Client & Holding
    const object = typeof config === "object" && config !== null ? (config as ConfigObject) : undefined
    const text =
      typeof config === "string" ? config : typeof object?.text === "string" ? object.text : undefined
    const parameterless = isEmpty(values) && isEmpty(object?.values) && object?.name === undefined
    const statements =
      text !== undefined && parameterless && object?.submit === undefined ? holdable(text) : undefined
    const prefix = self[held]
    // The common case: nothing held, nothing to hold.
    if (prefix === undefined && statements === undefined) return send.call(self, config, values, callback)

    const cb = (
      typeof values === "function"
        ? values
        : typeof callback === "function"
          ? callback
          : typeof object?.callback === "function"
            ? object.callback
            : undefined
    ) as Callback | undefined
    if (cb === undefined && object?.submit === undefined)
      return new Promise((resolve, reject) =>
        holding.call(
          self,
          config,
          Array.isArray(values) ? values : undefined,
          (err: Error | null | undefined, result: unknown) => (err ? reject(err) : resolve(result)),
        ),
      )

    if (statements !== undefined) {
      self[held] = [...(prefix ?? []), ...statements]
      cb?.(null, heldAnswer(statements[0]!))
      return undefined
    }
    if (prefix === undefined) return send.call(self, config, values, callback)

    if (object?.submit !== undefined) {
      // A submittable of its own (a cursor): the held text goes first, queued in order. Should it
      // fail, the transaction it opens is failed and so is the cursor.
      self[held] = undefined
      ;(send.call(self, prefix.join(";\n")) as Promise<unknown>).catch(() => {})
      return send.call(self, config, values, callback)
    }
    const notArray = (v: unknown) => v !== undefined && typeof v !== "function" && !Array.isArray(v)
    if (text === undefined || notArray(values) || notArray(object?.values))
      // Not a query node-postgres would send (it says why): held statements stay for the next.
      return send.call(self, config, values, callback)

    if (parameterless && transactionEnd.test(text)) {
      self[held] = undefined
      // The transaction never started: its end needs no round trip.
      if (/^BEGIN$/i.test(prefix[0]!)) {
        cb?.(null, heldAnswer(text.trim()))
        return undefined
      }
      // Savepoints (and settings) of a transaction that ends now change nothing: dropped.
      return send.call(self, config, values, callback)
    }

    self[held] = undefined
    if (parameterless) {
      // Both simple: one text; the caller sees only its own statements' results.
      const joined = `${prefix.join(";\n")};\n${text}`
      const own = (err: Error | null | undefined, result: unknown) => {
        if (!Array.isArray(result)) return cb?.(err, result)
        const mine = result.slice(prefix.length)
        cb?.(err, mine.length === 1 ? mine[0] : mine)
      }
      return send.call(
        self,
        object === undefined ? joined : { ...object, text: joined, callback: undefined },
        own,
      )
    }
    const inner = new Pg.Query(
      (object === undefined ? { text } : { ...object, callback: undefined }) as Pg.QueryConfig,
      Array.isArray(values) && values.length > 0 ? (values as []) : undefined,
      cb,
    )
    return send.call(self, new Pipelined(prefix, inner as unknown as Submittable, object?.query_timeout))
  }

/** For the pool's `release`: what a connection still holds was never sent; it is dropped. */
export const dropHeld = (client: Pg.PoolClient) => {
  ;(client as Pg.PoolClient & Holding)[held] = undefined
}
