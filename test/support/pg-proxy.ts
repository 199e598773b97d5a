/**
 * A TCP proxy in front of PostgreSQL that can lose a connection at its next COMMIT — the one moment
 * a client cannot know what happened: cut `before` the server gets the COMMIT, the transaction rolls
 * back; cut `after` the server answered it, the transaction committed and only the reply is lost.
 * Everything else passes through unchanged.
 */
import { connect, createServer, type Socket } from "node:net"
import { Deferred, Effect } from "effect"

export type CommitCut = "before" | "after"

const Query = 0x51

export const pgProxy = (targetUrl: string) =>
  Effect.gen(function* () {
    const target = new URL(targetUrl)
    let armed: { readonly cut: CommitCut; readonly done: Deferred.Deferred<void> } | undefined
    const sockets = new Set<Socket>()

    const server = createServer((client) => {
      const upstream = connect(Number(target.port), target.hostname)
      sockets.add(client).add(upstream)
      const cutNow = () => {
        client.destroy()
        upstream.destroy()
      }
      let replyCut: Deferred.Deferred<void> | undefined
      let pending = Buffer.alloc(0)
      let started = false
      client.on("data", (chunk: Buffer) => {
        pending = Buffer.concat([pending, chunk])
        // The startup message has no type byte; every later message is a type byte and a length.
        for (;;) {
          const header = started ? 5 : 4
          if (pending.length < header) return
          const length = started ? pending.readInt32BE(1) + 1 : pending.readInt32BE(0)
          if (pending.length < length) return
          const message = pending.subarray(0, length)
          pending = pending.subarray(length)
          const commit =
            started && message[0] === Query && message.subarray(5, length - 1).toString() === "COMMIT"
          started = true
          if (commit && armed !== undefined) {
            const { cut, done } = armed
            armed = undefined
            if (cut === "before") {
              cutNow()
              Deferred.unsafeDone(done, Effect.void)
              return
            }
            replyCut = done
          }
          upstream.write(message)
        }
      })
      upstream.on("data", (chunk) => {
        if (replyCut === undefined) return void client.write(chunk)
        cutNow()
        Deferred.unsafeDone(replyCut, Effect.void)
      })
      for (const socket of [client, upstream]) {
        socket.on("error", () => cutNow())
        socket.on("close", () => {
          sockets.delete(socket)
          cutNow()
        })
      }
    })
    const port = yield* Effect.acquireRelease(
      Effect.async<number>((resume) => {
        server.listen(0, "127.0.0.1", () =>
          resume(Effect.succeed((server.address() as { port: number }).port)),
        )
      }),
      () =>
        Effect.async<void>((resume) => {
          for (const socket of sockets) socket.destroy()
          server.close(() => resume(Effect.void))
        }),
    )
    const url = new URL(targetUrl)
    url.port = String(port)
    return {
      /** The database's URL through the proxy. */
      url: url.toString(),
      /** Cuts the next COMMIT's connection; the returned effect completes when it has been cut. */
      cutNextCommit: (cut: CommitCut) =>
        Effect.map(Deferred.make<void>(), (done) => {
          armed = { cut, done }
          return Deferred.await(done)
        }),
    }
  })
