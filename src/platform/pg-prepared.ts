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
 * (row-level security) is re-planned
 * by PostgreSQL when the role differs, and DDL makes it re-plan too. One thing a cache cannot
 * survive: a migration that changes the columns a cached statement returns ("cached plan must not
 * change result type" until the process reconnects). Our statements name their columns (no
 * `SELECT *`), so added columns are safe; a changed column type needs the processes restarted.
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

const maxStatements = 2000
const names = new Map<string, string>()

const nameOf = (text: string) => {
  const known = names.get(text)
  if (known !== undefined || names.size >= maxStatements) return known
  const name = `hashinsight_${names.size}`
  names.set(text, name)
  return name
}

type Query = (this: Pg.Client, config: unknown, values?: unknown, callback?: unknown) => unknown

const send = Pg.Client.prototype.query as Query

/** node-postgres's client, naming parameterized statements; the pool's `Client`. */
export class PreparingClient extends Pg.Client {}

;(PreparingClient.prototype as unknown as { query: Query }).query = function (
  this: Pg.Client,
  config: unknown,
  values?: unknown,
  callback?: unknown,
) {
  if (typeof config === "string" && Array.isArray(values) && values.length > 0) {
    const name = nameOf(config)
    if (name !== undefined) return send.call(this, { name, text: config, values }, callback)
  }
  return send.call(this, config, values, callback)
}
