/**
 * Named prepared statements for parameterized queries: a statement cache per connection, as
 * postgres.js keeps by default. node-postgres sends every query as an unnamed statement, so
 * PostgreSQL parses and analyses its text on every execution; named, it does that once per
 * connection and later executions only bind and run, which cuts PostgreSQL's CPU per write (README,
 * Benchmarks).
 *
 * Texts are named in the order first seen, up to `maxStatements` per process (each connection
 * prepares the ones it runs); texts past that stay unnamed, so statements whose text varies
 * without bound (a bulk insert's row count makes one per size) cannot grow the cache forever.
 * Queries without parameters keep the simple protocol. A cached plan that depends on the role
 * (row-level security) is re-planned by PostgreSQL when the role differs, and DDL makes it re-plan
 * too. What a cache cannot survive on its own: a migration that changes the type of a column a
 * statement returns ("cached plan must not change result type", 0A000, on every later execution on
 * that connection), and statements dropped under it (DISCARD ALL or DEALLOCATE: 26000). Either
 * gives the text a fresh name, so each connection prepares it again, and the statement is sent once
 * more under it at once: outside a transaction that is the answer; inside one, which the error
 * aborted, the first error stands and the transaction fails once.
 *
 * And one a cache makes possible: after a few executions PostgreSQL may keep one generic plan per
 * statement and connection, made with the statistics of that moment. On a database created moments
 * ago the tables are empty and not yet analysed, so those plans scan (`idempotency_records` read
 * whole for a key claim, a user's holdings read through the whole tenant's index), until
 * autovacuum's first analyze replaces them — up to
 * `autovacuum_naptime` (1 min) in. A database that has been running has its statistics; a fresh
 * one taking load at once can run `ANALYZE` after its first few thousand writes, as the bench does.
 * Not after its first few dozen: tables of one page are best scanned whole, so that is the plan
 * kept, and it stays while the table grows until autovacuum analyses it again (some of the key
 * claims then scan thousands of records).
 */
import Pg from "pg"
import { isStaleStatement } from "./sql-errors.ts"

const maxStatements = 2000
const names = new Map<string, string>()
let named = 0

const rename = (text: string) => {
  const name = `hashinsight_${named++}`
  names.set(text, name)
  return name
}

const nameOf = (text: string) => {
  const known = names.get(text)
  if (known !== undefined || names.size >= maxStatements) return known
  return rename(text)
}

type Callback = (error: Error | null, result?: unknown) => void
type Query = (this: Pg.Client, config: unknown, values?: unknown, callback?: unknown) => unknown

const send = Pg.Client.prototype.query as Query

const field = (error: unknown, name: string): unknown =>
  typeof error === "object" && error !== null ? (error as Record<string, unknown>)[name] : undefined

const isFatal = (error: unknown) =>
  field(error, "severity") === "FATAL" || field(error, "severity") === "PANIC"

const sendNamed = (client: Pg.Client, name: string, text: string, values: unknown, done: Callback) =>
  send.call(client, { name, text, values }, (error: Error | null, result?: unknown) => {
    if (!isStaleStatement(error)) return done(error, result)
    const current = names.get(text)
    const fresh = current === name || current === undefined ? rename(text) : current
    send.call(client, { name: fresh, text, values }, (again: Error | null, retried?: unknown) =>
      // 25P02: the first error aborted the transaction it ran in.
      field(again, "code") === "25P02" ? done(error) : done(again, retried),
    )
  })

/**
 * node-postgres's client, naming parameterized statements; the pool's `Client`. It also ends itself
 * when its backend sends FATAL (terminated, or the server shutting down): node-postgres hands that
 * error to the running query alone and keeps the client open until the socket's close arrives.
 * Released in between, the client went back to the pool and straight to the next request waiting
 * for a connection, which failed on it too. Ended before the query's caller hears of the error (and
 * may release it at once), it is dropped on release as every ended client is, and any later
 * statement on it fails unsent. Queries of our own kind (`Submittable`s: cursors) are passed on
 * untouched; the process runs none on the pool.
 */
export class PreparingClient extends Pg.Client {}

const query: Query = function (this: Pg.Client, config, values, callback) {
  if (typeof values === "function") return query.call(this, config, undefined, values)
  if (typeof field(config, "submit") === "function") return send.call(this, config, values, callback)
  if (typeof callback !== "function")
    return new Promise((resolve, reject) =>
      query.call(this, config, values, (error: Error | null, result?: unknown) =>
        error ? reject(error) : resolve(result),
      ),
    )
  const done: Callback = (error, result) => {
    if (isFatal(error)) void this.end()
    ;(callback as Callback)(error, result)
  }
  if (typeof config === "string" && Array.isArray(values) && values.length > 0) {
    const name = nameOf(config)
    if (name !== undefined) return sendNamed(this, name, config, values, done)
  }
  return send.call(this, config, values, done)
}

;(PreparingClient.prototype as unknown as { query: Query }).query = query
