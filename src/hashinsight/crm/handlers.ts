/** CRM handlers: each upsert is its row and its event in the request's tenant transaction. */
import { HttpApiBuilder } from "@effect/platform"
import { Effect } from "effect"
import { HashInsightApi } from "../api.ts"
import { tenantWrite } from "../route-kit.ts"
import { upsertAccount, upsertContact } from "./accounts.ts"
import { Account, Contact } from "./api.ts"

const ourData = { ParseError: Effect.die, OutboxOutsideTransaction: Effect.die } as const

export const CrmRoutes = HttpApiBuilder.group(HashInsightApi, "crm", (handlers) =>
  handlers
    .handle(
      "upsertAccount",
      ({ payload }) =>
        tenantWrite(200, Account, (tenantId) =>
          upsertAccount(tenantId, payload).pipe(Effect.catchTags(ourData)),
        ),
      { uninterruptible: true },
    )
    .handle(
      "upsertContact",
      ({ payload }) =>
        tenantWrite(200, Contact, (tenantId) =>
          upsertContact(tenantId, payload).pipe(Effect.catchTags(ourData)),
        ),
      { uninterruptible: true },
    ),
)
