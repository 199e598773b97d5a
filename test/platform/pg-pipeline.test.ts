import { afterAll, beforeAll, describe, expect, test } from "bun:test"
import Pg from "pg"
import { dropHeld } from "../../src/platform/pg-pipeline.ts"
import { PreparingClient } from "../../src/platform/pg-prepared.ts"
import { uniqueId } from "../support/ids.ts"

const url = process.env.DATABASE_URL
const table = `pg_pipeline_${Date.now().toString(36)}`
const admin = new Pg.Client({ connectionString: url })

const connect = async () => {
  const client = new PreparingClient({ connectionString: url })
  await client.connect()
  let roundTrips = 0
  ;(client as unknown as { connection: Pg.Connection }).connection.on("readyForQuery", () => roundTrips++)
  return { client, roundTrips: () => roundTrips }
}

const rows = async () =>
  (await admin.query<{ n: number }>(`SELECT n FROM ${table} ORDER BY n`)).rows.map((r) => r.n)

beforeAll(async () => {
  await admin.connect()
  await admin.query(`CREATE TABLE ${table} (n int)`)
})
afterAll(async () => {
  await admin.query(`DROP TABLE IF EXISTS ${table}`)
  await admin.end()
})

describe("BEGIN and SAVEPOINT travel with the next statement", () => {
  test("BEGIN costs no round trip of its own, and what follows it runs in its transaction", async () => {
    const { client, roundTrips } = await connect()
    try {
      const before = roundTrips()
      await client.query("BEGIN")
      const inserted = await client.query<{ n: number }>(`INSERT INTO ${table} VALUES ($1) RETURNING n`, [1])
      expect(inserted.rows).toEqual([{ n: 1 }])
      const [inTransaction] = (
        await client.query<{ open: boolean }>(
          "SELECT now() <> statement_timestamp() AS open, $1::int AS x",
          [0],
        )
      ).rows
      expect(inTransaction?.open).toBe(true)
      await client.query("ROLLBACK")
      expect(roundTrips() - before).toBe(3)
      expect(await rows()).toEqual([])
    } finally {
      await client.end()
    }
  })

  test("a held statement's error is the next statement's error, and the statement does not run", async () => {
    const { client } = await connect()
    try {
      // A text of its own, so it is parsed (and named) on this connection for the first time here.
      const text = `INSERT INTO ${table} SELECT $1::int WHERE $2::text IS NOT NULL`
      const marker = uniqueId("pipeline")
      await client.query("SAVEPOINT outside_any_transaction")
      const failed = await client.query(text, [2, marker]).then(
        () => undefined,
        (e: Error) => e,
      )
      expect(failed?.message).toContain("SAVEPOINT can only be used in transaction blocks")
      expect(await rows()).toEqual([])
      // The statement was never parsed under its name: its next use parses it and runs.
      await client.query(text, [3, marker])
      expect(await rows()).toEqual([3])
    } finally {
      await admin.query(`DELETE FROM ${table}`)
      await client.end()
    }
  })

  test("a parameterless statement after a held one answers only its own results", async () => {
    const { client, roundTrips } = await connect()
    try {
      const before = roundTrips()
      await client.query("BEGIN")
      await client.query("SAVEPOINT a")
      const both = (await client.query("SELECT 1 AS a; SELECT 2 AS b")) as unknown as Array<Pg.QueryResult>
      expect(both.map((r) => r.rows)).toEqual([[{ a: 1 }], [{ b: 2 }]])
      const one = await client.query("ROLLBACK TO SAVEPOINT a")
      expect(one.command).toBe("ROLLBACK")
      const commit = await client.query("COMMIT")
      expect(commit.command).toBe("COMMIT")
      expect(roundTrips() - before).toBe(3)
    } finally {
      await client.end()
    }
  })

  test("a connection back in its pool holding a BEGIN never sent has no transaction open", async () => {
    const pool = new Pg.Pool({ connectionString: url, max: 1, Client: PreparingClient })
    pool.on("release", (_error, client) => dropHeld(client))
    try {
      const first = await pool.connect()
      await first.query("BEGIN")
      first.release()
      const second = await pool.connect()
      await second.query(`INSERT INTO ${table} VALUES ($1)`, [4])
      second.release()
      // Committed on its own, so another session sees it.
      expect(await rows()).toEqual([4])
    } finally {
      await admin.query(`DELETE FROM ${table}`)
      await pool.end()
    }
  })

  test("a transaction's end runs even when a held SAVEPOINT would fail: the connection comes back clean", async () => {
    const { client } = await connect()
    try {
      await client.query("BEGIN")
      await client.query("SELECT 1/$1::int", [0]).catch(() => undefined)
      await client.query("SAVEPOINT in_a_failed_transaction")
      const end = await client.query("COMMIT")
      // A failed transaction's COMMIT answers ROLLBACK, as it does without holding.
      expect(end.command).toBe("ROLLBACK")
      const [after] = (await client.query<{ ok: number }>("SELECT $1::int AS ok", [1])).rows
      expect(after?.ok).toBe(1)
    } finally {
      await client.end()
    }
  })

  test("a transaction whose BEGIN is still held ends without a round trip", async () => {
    const { client, roundTrips } = await connect()
    try {
      const before = roundTrips()
      await client.query("BEGIN")
      await client.query("SAVEPOINT nothing_done")
      expect((await client.query("ROLLBACK")).command).toBe("ROLLBACK")
      expect(roundTrips() - before).toBe(0)
    } finally {
      await client.end()
    }
  })

  test("only BEGIN, SAVEPOINT and set_config are held: other texts are sent as they are", async () => {
    const { client } = await connect()
    try {
      const ran = (await client.query(
        `BEGIN; INSERT INTO ${table} VALUES (5); COMMIT`,
      )) as unknown as Array<Pg.QueryResult>
      expect(ran.map((r) => r.command)).toEqual(["BEGIN", "INSERT", "COMMIT"])
      expect(await rows()).toEqual([5])
      // A comment is not one of the forms either: sent at once, it cannot swallow what follows.
      await client.query("BEGIN -- open")
      expect((await client.query("COMMIT")).command).toBe("COMMIT")
    } finally {
      await admin.query(`DELETE FROM ${table}`)
      await client.end()
    }
  })

  test("a parameterless query object after a failing held statement answers the error and leaves the connection usable", async () => {
    const { client } = await connect()
    try {
      await client.query("SAVEPOINT outside_any_transaction")
      const failed = await client.query({ text: "SELECT 1 AS one", rowMode: "array", values: [] }).then(
        () => undefined,
        (e: Error) => e,
      )
      expect(failed?.message).toContain("SAVEPOINT can only be used in transaction blocks")
      const [next] = (await client.query<{ ok: number }>("SELECT 3 AS ok")).rows
      expect(next?.ok).toBe(3)
      await client.query("BEGIN")
      const arrays = await client.query({ text: "SELECT 1 AS one, 2 AS two", rowMode: "array" })
      expect(arrays.rows).toEqual([[1, 2]])
      await client.query("COMMIT")
    } finally {
      await client.end()
    }
  })

  test("a query's own read timeout holds when held statements travel with it", async () => {
    const { client } = await connect()
    try {
      await client.query("BEGIN")
      const started = Date.now()
      const failed = await client
        .query({ text: "SELECT pg_sleep($1::float8)", values: [1.5], query_timeout: 200 } as Pg.QueryConfig)
        .then(
          () => undefined,
          (e: Error) => e,
        )
      expect(failed?.message).toBe("Query read timeout")
      expect(Date.now() - started).toBeLessThan(1_000)
    } finally {
      await client.end().catch(() => undefined)
    }
  })
})
