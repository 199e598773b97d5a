/**
 * The portfolio ledger (migration 043): one row per treasury movement the portfolio consumer
 * applied, added in the consumer's transaction beside its inbox row. It is an append, not an upsert,
 * on purpose: the inbox is what makes each event apply once, and the ledger is where a failure of
 * that guarantee would show — two rows for one event — which `bun run chaos` audits.
 */
import { SqlClient } from "@effect/sql"
import { Effect } from "effect"
import type { treasuryTopic } from "../topics.ts"

type TreasuryMovement = typeof treasuryTopic.events.TreasuryTransactionRecorded.Type

/** Withdrawals and sales reduce holdings, as `treasury_transactions.btc_delta` says. */
export const btcDeltaOf = (movement: Pick<TreasuryMovement, "kind" | "btc">) =>
  movement.kind === "withdrawal" || movement.kind === "sale" ? -movement.btc : movement.btc

export const postToLedger = Effect.fn("Portfolio.postToLedger")(function* (
  tenantId: string,
  eventId: string,
  movement: TreasuryMovement,
) {
  const sql = yield* SqlClient.SqlClient
  yield* sql`INSERT INTO portfolio_ledger ${sql.insert({
    tenant_id: tenantId,
    event_id: eventId,
    user_id: movement.userId,
    transaction_id: movement.transactionId,
    btc_delta: btcDeltaOf(movement),
  })}`
})
