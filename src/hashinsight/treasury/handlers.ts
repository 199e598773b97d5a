/** Treasury handlers: the row and its event in the request's tenant transaction. */
import { HttpApiBuilder } from "@effect/platform"
import { Effect } from "effect"
import { HashInsightApi } from "../api.ts"
import { tenantWrite } from "../route-kit.ts"
import { TreasuryTransaction } from "./api.ts"
import { recordTreasuryTransaction } from "./record-transaction.ts"

export const TreasuryRoutes = HttpApiBuilder.group(HashInsightApi, "treasury", (handlers) =>
  handlers.handle(
    "recordTransaction",
    ({ payload }) =>
      tenantWrite(201, TreasuryTransaction, (tenantId) =>
        recordTreasuryTransaction(tenantId, payload).pipe(
          Effect.map((t) => ({ ...t, at: new Date(t.at) })),
          Effect.catchTags({ ParseError: Effect.die, OutboxOutsideTransaction: Effect.die }),
        ),
      ),
    { uninterruptible: true },
  ),
)
