/**
 * Work that must wait until the consumer's unit of work is over. A handler runs inside the inbox
 * transaction, so invalidating a cache key from the handler itself would let a read between the
 * invalidation and the commit cache the old row again. The runtime runs each unit (its attempts,
 * transaction and commit, or its dead-lettering) in one fiber: a daemon that awaits that fiber
 * runs after the commit — without the finished transaction's connection in its context, so any SQL
 * it runs takes a connection of its own.
 */
import { SqlClient } from "@effect/sql"
import { Context, Effect, Fiber } from "effect"

export const afterUnit = <E, R>(effect: Effect.Effect<void, E, R>): Effect.Effect<void, never, R> =>
  Effect.withFiberRuntime<void, never, R>((unit) =>
    Effect.forkDaemon(
      Fiber.await(unit).pipe(
        Effect.zipRight(effect),
        Effect.catchAllCause((cause) => Effect.logWarning("post-commit step failed", cause)),
        Effect.mapInputContext(
          (context: Context.Context<R>) =>
            Context.omit(SqlClient.TransactionConnection)(context) as Context.Context<R>,
        ),
      ),
    ).pipe(Effect.asVoid),
  )
