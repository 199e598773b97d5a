/**
 * CRM accounts and contacts: each upsert writes its row and its `AccountUpserted` /
 * `ContactUpserted` event in one transaction. Contact events are keyed by their account, so one
 * account's events stay in order.
 */
import { SqlClient } from "@effect/sql"
import { Effect, Schema } from "effect"
import { Outbox } from "../../engine/outbox.ts"
import { withTenant } from "../../platform/db.ts"
import { type EventMeta, eventFields } from "../event-meta.ts"
import { crmTopic } from "../topics.ts"

const NonEmpty = Schema.String.pipe(Schema.minLength(1), Schema.maxLength(256))

export const AccountInput = Schema.Struct({
  accountId: NonEmpty,
  userId: crmTopic.events.AccountUpserted.fields.userId,
  name: NonEmpty,
  tier: crmTopic.events.AccountUpserted.fields.tier,
})
export type AccountInput = typeof AccountInput.Type

export const ContactInput = Schema.Struct({
  contactId: NonEmpty,
  accountId: NonEmpty,
  email: Schema.String.pipe(Schema.pattern(/^[^@\s]+@[^@\s]+$/)),
  name: NonEmpty,
})
export type ContactInput = typeof ContactInput.Type

export class UnknownAccount extends Schema.TaggedError<UnknownAccount>()("UnknownAccount", {
  accountId: Schema.String,
}) {
  override get message() {
    return `no CRM account ${this.accountId}`
  }
}

export const upsertAccount = Effect.fn("Crm.upsertAccount")(function* (
  tenantId: string,
  input: AccountInput,
  meta: EventMeta = {},
) {
  const outbox = yield* Outbox
  const [eventId] = yield* withTenant(tenantId)(
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      yield* sql`
        INSERT INTO crm_accounts (tenant_id, id, user_id, name, tier)
        VALUES (${tenantId}, ${input.accountId}, ${input.userId}, ${input.name}, ${input.tier})
        ON CONFLICT (tenant_id, id) DO UPDATE
          SET user_id = EXCLUDED.user_id, name = EXCLUDED.name, tier = EXCLUDED.tier, updated_at = now()`
      return yield* outbox.append(crmTopic, [
        {
          type: "AccountUpserted",
          aggregateId: input.accountId,
          tenantId,
          payload: { accountId: input.accountId, userId: input.userId, name: input.name, tier: input.tier },
          ...eventFields(meta),
        },
      ])
    }),
  )
  return { ...input, eventId: eventId! }
})

export const upsertContact = Effect.fn("Crm.upsertContact")(function* (
  tenantId: string,
  input: ContactInput,
  meta: EventMeta = {},
) {
  const outbox = yield* Outbox
  const [eventId] = yield* withTenant(tenantId)(
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      // Locks the account row against a concurrent delete, and names the missing account precisely.
      const account = yield* sql`
        SELECT 1 FROM crm_accounts WHERE id = ${input.accountId} FOR KEY SHARE`
      if (account.length === 0) return yield* new UnknownAccount({ accountId: input.accountId })
      yield* sql`
        INSERT INTO crm_contacts (tenant_id, id, account_id, email, name)
        VALUES (${tenantId}, ${input.contactId}, ${input.accountId}, ${input.email}, ${input.name})
        ON CONFLICT (tenant_id, id) DO UPDATE
          SET account_id = EXCLUDED.account_id, email = EXCLUDED.email, name = EXCLUDED.name,
              updated_at = now()`
      return yield* outbox.append(crmTopic, [
        {
          type: "ContactUpserted",
          aggregateId: input.accountId,
          tenantId,
          payload: {
            contactId: input.contactId,
            accountId: input.accountId,
            email: input.email,
            name: input.name,
          },
          ...eventFields(meta),
        },
      ])
    }),
  )
  return { ...input, eventId: eventId! }
})
