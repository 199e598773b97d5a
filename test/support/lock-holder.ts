/**
 * A process that takes one Redis lock with the default options and holds it until it is killed:
 * `bun test/support/lock-holder.ts <key>`. It prints its fencing token once it holds the lock, so a
 * test can SIGKILL (or SIGSTOP) a holder that is known to hold it.
 */
import { Console, Effect } from "effect"
import { runMain } from "../../src/bin/main.ts"
import { defaultLockOptions, Locks } from "../../src/engine/consumer/lock.ts"
import { Platform } from "../../src/platform/layers.ts"

const [key] = process.argv.slice(2)
if (!key) {
  console.error("usage: bun test/support/lock-holder.ts <key>")
  process.exit(2)
}

runMain(
  Effect.scoped(
    Effect.flatMap(Locks.make(defaultLockOptions), (locks) =>
      locks.withLock(key, (held) => Effect.zipRight(Console.log(`held ${held.token}`), Effect.never)),
    ),
  ),
  Platform.layer,
)
