import { describe, expect } from "bun:test"
import { SqlClient } from "@effect/sql"
import { Effect } from "effect"
import { effectTest } from "../support/effect.ts"
import { uniqueId } from "../support/ids.ts"

describe("statement cache", () => {
  effectTest(
    "a parameterized statement is prepared once per connection under a name; one without parameters is not",
    () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        // A text of its own, so no earlier test has prepared it on this connection.
        const marker = uniqueId("prepared")
        const prepared = yield* sql.withTransaction(
          Effect.gen(function* () {
            for (const n of [1, 2, 3]) {
              const [row] = yield* sql<{ n: number }>`SELECT ${n}::int AS n, ${marker}::text AS marker`
              expect(row?.n).toBe(n)
            }
            yield* sql.unsafe(`SELECT '${marker}' AS unparameterized`)
            return yield* sql<{ name: string; statement: string }>`
            SELECT name, statement FROM pg_prepared_statements WHERE NOT from_sql`
          }),
        )
        const mine = prepared.filter((p) => p.statement.includes("marker"))
        expect(mine.length).toBe(1)
        expect(mine[0]!.name).toStartWith("hashinsight_")
        expect(prepared.some((p) => p.statement.includes("unparameterized"))).toBe(false)
      }),
  )
})
