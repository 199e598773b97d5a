/** A site incident: the `site_incidents` row and its `SiteIncidentReported` event commit together. */
import { SqlClient } from "@effect/sql"
import { Effect, Schema } from "effect"
import { Outbox } from "../../engine/outbox.ts"
import { withTenant } from "../../platform/db.ts"
import { type EventMeta, eventFields } from "../event-meta.ts"
import { opsTopic } from "../topics.ts"

const { site, severity, description } = opsTopic.events.SiteIncidentReported.fields

export const SiteIncidentInput = Schema.Struct({
  site: site.pipe(Schema.minLength(1)),
  severity,
  description,
  at: Schema.optional(Schema.Date),
})
export type SiteIncidentInput = typeof SiteIncidentInput.Type

export const reportSiteIncident = Effect.fn("Ops.reportSiteIncident")(function* (
  tenantId: string,
  input: SiteIncidentInput,
  meta: EventMeta = {},
) {
  const outbox = yield* Outbox
  const incident = {
    incidentId: Bun.randomUUIDv7(),
    site: input.site,
    severity: input.severity,
    description: input.description,
    at: (input.at ?? new Date()).toISOString(),
  }
  const [eventId] = yield* withTenant(tenantId)(
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      yield* sql`INSERT INTO site_incidents ${sql.insert({
        tenant_id: tenantId,
        id: incident.incidentId,
        site: incident.site,
        severity: incident.severity,
        description: incident.description,
        at: incident.at,
      })}`
      return yield* outbox.append(opsTopic, [
        {
          type: "SiteIncidentReported",
          aggregateId: incident.site,
          tenantId,
          payload: incident,
          ...eventFields(meta),
        },
      ])
    }),
  )
  return { ...incident, eventId: eventId! }
})
