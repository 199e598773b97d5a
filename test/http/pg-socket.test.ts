import { describe, expect, test } from "bun:test"
import { Socket } from "node:net"
import pg from "pg"
import { CoalescingSocket } from "../../src/platform/pg-socket.ts"

type Write = (this: Socket, ...args: Array<unknown>) => boolean

describe("CoalescingSocket (the API's PostgreSQL socket)", () => {
  test("a query's protocol messages reach the socket as one write; answers stay in order", async () => {
    const socket = new CoalescingSocket()
    const client = new pg.Client({ connectionString: process.env.DATABASE_URL, stream: () => socket })
    const write = Socket.prototype.write as Write
    let writes = 0
    Socket.prototype.write = function (this: Socket, ...args: Array<unknown>) {
      if (this === socket) writes++
      return write.apply(this, args)
    } as Write as typeof Socket.prototype.write
    try {
      await client.connect()
      writes = 0
      const answers = await Promise.all(
        Array.from({ length: 20 }, (_, i) => client.query<{ x: number }>("SELECT $1::int AS x", [i])),
      )
      expect(answers.map((r) => r.rows[0]!.x)).toEqual(Array.from({ length: 20 }, (_, i) => i))
      // Uncoalesced, pg writes Parse, Bind, Describe, Execute and Sync separately: 100 writes.
      expect(writes).toBeGreaterThan(0)
      expect(writes).toBeLessThanOrEqual(20)
    } finally {
      Socket.prototype.write = write as typeof Socket.prototype.write
      await client.end()
    }
  })
})
