/**
 * One active relay per slot: the leader holds a session-level advisory lock on a dedicated
 * connection. When its process dies the connection closes and PostgreSQL releases the lock, so a
 * standby polling `pg_try_advisory_lock` takes over — no lease clock to tune.
 */
import { hostname } from "node:os"
import { Deferred, Effect, Redacted } from "effect"
import pg from "pg"
import type { RelayConfig } from "./config.ts"
import { RelayError, relayError } from "./errors.ts"

/** Advisory-lock namespace (first key) for relay leadership: "rlay". */
const lockNamespace = 0x726c6179

export interface Leadership {
  /** Fails when the lock session is lost: the caller must stop publishing at once. */
  readonly lost: Effect.Effect<never, RelayError>
}

const lockSession = (config: RelayConfig) =>
  Effect.acquireRelease(
    Effect.tryPromise({
      try: async () => {
        const client = new pg.Client({
          connectionString: Redacted.value(config.databaseUrl),
          application_name: `hashinsight-relay-lock:${config.slot}`,
          keepAlive: true,
        })
        await client.connect()
        return client
      },
      catch: relayError("connecting the leadership session"),
    }),
    (client) =>
      Effect.promise(() => client.end().catch(() => undefined)).pipe(
        // A release is uninterruptible: without this the timeout could not cut the wait short.
        Effect.interruptible,
        Effect.timeout("5 seconds"),
        Effect.ignore,
      ),
  )

export const leadership = (config: RelayConfig) =>
  Effect.gen(function* () {
    const client = yield* lockSession(config)
    const lost = yield* Deferred.make<never, RelayError>()
    const onLost = (cause: unknown) =>
      Deferred.unsafeDone(
        lost,
        Effect.fail(new RelayError({ reason: "leadership session lost", fatal: false, cause })),
      )
    client.on("error", onLost)
    client.on("end", () => onLost("connection ended"))

    const tryLock = Effect.tryPromise({
      try: () =>
        client.query<{ ok: boolean }>("SELECT pg_try_advisory_lock($1, hashtext($2)) AS ok", [
          lockNamespace,
          config.slot,
        ]),
      catch: relayError("trying the leadership lock"),
    }).pipe(Effect.map((r) => r.rows[0]?.ok === true))

    if (!(yield* tryLock)) {
      yield* Effect.logInfo(`relay standby: another relay holds '${config.slot}'; polling to take over`)
      yield* Effect.sleep(config.standbyPoll).pipe(
        Effect.zipRight(tryLock),
        Effect.repeat({ until: (ok) => ok }),
        Effect.raceFirst(Deferred.await(lost)),
      )
    }
    yield* Effect.tryPromise({
      try: () =>
        client.query(
          `INSERT INTO relay_state (name, mode, holder) VALUES ($1, $2, $3)
           ON CONFLICT (name) DO UPDATE SET mode = EXCLUDED.mode, holder = EXCLUDED.holder, updated_at = now()`,
          [config.slot, config.mode, `${hostname()}:${process.pid}`],
        ),
      catch: relayError("recording the relay holder"),
    })
    return { lost: Deferred.await(lost) } satisfies Leadership
  }).pipe(Effect.withSpan("Relay.leadership"))
