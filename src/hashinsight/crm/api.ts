/** CRM routes: a user's account and its contacts, upserted by the caller's own ids. */
import { HttpApiEndpoint, HttpApiGroup, OpenApi } from "@effect/platform"
import { Schema } from "effect"
import { Authentication } from "../../http/authentication.ts"
import { withIdempotencyKey } from "../../http/idempotency.ts"
import { UserId } from "../miners/schema.ts"
import { UnknownCrmAccountProblem } from "../problems.ts"
import { Text } from "../request-schema.ts"
import { crmTopic } from "../topics.ts"

const Tier = crmTopic.events.AccountUpserted.fields.tier

export const UpsertAccount = Schema.Struct({
  accountId: Text(256),
  userId: UserId,
  name: Text(256),
  tier: Tier,
}).annotations({ identifier: "UpsertAccount" })

export const UpsertContact = Schema.Struct({
  contactId: Text(256),
  accountId: Text(256).annotations({ description: "An account of this tenant (else 422)" }),
  email: Text(256).pipe(Schema.pattern(/^[^@\s]+@[^@\s]+$/)),
  name: Text(256),
}).annotations({ identifier: "UpsertContact" })

export const Account = Schema.Struct({ ...UpsertAccount.fields, eventId: Schema.String }).annotations({
  identifier: "Account",
})
export const Contact = Schema.Struct({ ...UpsertContact.fields, eventId: Schema.String }).annotations({
  identifier: "Contact",
})

export class CrmGroup extends HttpApiGroup.make("crm")
  .add(
    HttpApiEndpoint.post("upsertAccount", "/api/crm/accounts")
      .setPayload(UpsertAccount)
      .addSuccess(Account)
      .pipe(withIdempotencyKey)
      .annotate(OpenApi.Summary, "Create or update a CRM account (appends AccountUpserted)"),
  )
  .add(
    HttpApiEndpoint.post("upsertContact", "/api/crm/contacts")
      .setPayload(UpsertContact)
      .addSuccess(Contact)
      .addError(UnknownCrmAccountProblem)
      .pipe(withIdempotencyKey)
      .annotate(OpenApi.Summary, "Create or update a contact of an account (appends ContactUpserted)"),
  )
  .middleware(Authentication) {}
