/**
 * The process's pool released while the database hangs (a server stopped, a network that drops
 * everything): ending a connection waits for the server's side of the close, which never comes, so
 * the release is bounded.
 */
import { describe, expect } from "bun:test"
import { connect, createServer, type Socket } from "node:net"
import { SqlClient } from "@effect/sql"
import { Duration, Effect, Exit, Layer, Scope } from "effect"
import { effectTest } from "../support/effect.ts"
import { poolOf } from "../support/pool.ts"

/** A proxy to PostgreSQL that, once frozen, passes nothing on and closes nothing: a hung server. */
const freezingProxy = (targetUrl: string) =>
  Effect.gen(function* () {
    const target = new URL(targetUrl)
    let frozen = false
    const sockets = new Set<Socket>()
    const server = createServer({ allowHalfOpen: true }, (client) => {
      const upstream = connect({ port: Number(target.port), host: target.hostname, allowHalfOpen: true })
      sockets.add(client).add(upstream)
      client.on("data", (chunk) => frozen || upstream.write(chunk))
      upstream.on("data", (chunk) => frozen || client.write(chunk))
      client.on("end", () => frozen || upstream.end())
      upstream.on("end", () => frozen || client.end())
      for (const socket of [client, upstream]) socket.on("error", () => socket.destroy())
    })
    const port = yield* Effect.acquireRelease(
      Effect.async<number>((resume) => {
        server.listen(0, "127.0.0.1", () =>
          resume(Effect.succeed((server.address() as { port: number }).port)),
        )
      }),
      () =>
        Effect.sync(() => {
          for (const socket of sockets) socket.destroy()
          server.close()
        }),
    )
    const url = new URL(targetUrl)
    url.port = String(port)
    return { url: url.toString(), freeze: () => (frozen = true) }
  })

describe("the database pool's release", () => {
  effectTest(
    "the database hangs with connections idle in the pool: closing its scope takes the release's bound, not forever",
    () =>
      Effect.gen(function* () {
        const proxy = yield* freezingProxy(process.env.DATABASE_URL!)
        const scope = yield* Scope.make()
        const context = yield* Layer.buildWithScope(poolOf(2, proxy.url), scope)
        yield* Effect.flatMap(SqlClient.SqlClient, (sql) =>
          Effect.all([sql`SELECT pg_sleep(0.05)`, sql`SELECT pg_sleep(0.05)`], { concurrency: 2 }),
        ).pipe(Effect.provide(context))
        proxy.freeze()
        const [took] = yield* Effect.timed(Scope.close(scope, Exit.void))
        expect(Duration.toMillis(took)).toBeLessThan(3_000)
      }),
    { timeout: 20_000 },
  )

  effectTest(
    "the database hangs with a statement in flight on a connection still checked out: closing the pool's scope takes the release's bound",
    () =>
      Effect.gen(function* () {
        const proxy = yield* freezingProxy(process.env.DATABASE_URL!)
        const scope = yield* Scope.make()
        const context = yield* Layer.buildWithScope(poolOf(2, proxy.url), scope)
        yield* Effect.flatMap(SqlClient.SqlClient, (sql) => sql`SELECT 1`).pipe(Effect.provide(context))
        proxy.freeze()
        // Outside the pool's scope, so nothing interrupts it before the pool is released.
        yield* Effect.forkDaemon(
          Effect.flatMap(SqlClient.SqlClient, (sql) => sql`SELECT 1`).pipe(Effect.provide(context)),
        )
        yield* Effect.sleep("100 millis")
        const [took] = yield* Effect.timed(Scope.close(scope, Exit.void))
        expect(Duration.toMillis(took)).toBeLessThan(3_000)
      }),
    { timeout: 20_000 },
  )
})
