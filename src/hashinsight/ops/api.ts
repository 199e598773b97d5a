/** Operations routes: market and network observations, and site incidents. */
import { HttpApiEndpoint, HttpApiGroup, OpenApi } from "@effect/platform"
import { Schema } from "effect"
import { Authentication } from "../../http/authentication.ts"
import { withIdempotencyKey } from "../../http/idempotency.ts"
import { NotFoundProblem } from "../problems.ts"
import { At, Text } from "../request-schema.ts"
import { opsTopic } from "../topics.ts"

// Upper bounds keep the economics finite; they are far above any real figure.
const Positive = (max: number) =>
  Schema.Number.pipe(Schema.finite(), Schema.positive(), Schema.lessThanOrEqualTo(max))

export const PostMarketData = Schema.Struct({
  btcPriceUsd: Positive(1e9).annotations({ description: "BTC price in USD, e.g. 95000" }),
  difficulty: Positive(1e30).annotations({ description: "Network difficulty, e.g. 1.1e14" }),
  blockRewardBtc: Positive(50).annotations({ description: "Block subsidy in BTC, e.g. 3.125" }),
  feesBtcPerBlock: Schema.Number.pipe(Schema.finite(), Schema.between(0, 1000)).annotations({
    description: "Average fees per block in BTC, e.g. 0.05",
  }),
  at: Schema.optional(At),
}).annotations({ identifier: "PostMarketData" })

export const MarketDataView = Schema.Struct({
  btcPriceUsd: Schema.Number,
  difficulty: Schema.Number,
  blockRewardBtc: Schema.Number,
  feesBtcPerBlock: Schema.Number,
  at: Schema.Date,
}).annotations({ identifier: "MarketData" })

export const RecordedMarketData = Schema.Struct({
  ...MarketDataView.fields,
  eventId: Schema.String,
}).annotations({
  identifier: "RecordedMarketData",
})

export const ReportIncident = Schema.Struct({
  site: Text(128),
  severity: opsTopic.events.SiteIncidentReported.fields.severity,
  description: Text(4000),
  at: Schema.optional(At),
}).annotations({ identifier: "ReportIncident" })

export const Incident = Schema.Struct({
  incidentId: Schema.String,
  site: Schema.String,
  severity: Schema.String,
  description: Schema.String,
  at: Schema.Date,
  eventId: Schema.String,
}).annotations({ identifier: "Incident" })

export class OpsGroup extends HttpApiGroup.make("ops")
  .add(
    HttpApiEndpoint.post("postMarketData", "/api/ops/market")
      .setPayload(PostMarketData)
      .addSuccess(RecordedMarketData, { status: 201 })
      .pipe(withIdempotencyKey)
      .annotate(OpenApi.Summary, "Record a market observation (appends MarketDataUpdated)"),
  )
  .add(
    HttpApiEndpoint.get("getMarketData", "/api/ops/market")
      .addSuccess(MarketDataView)
      .addError(NotFoundProblem)
      .annotate(OpenApi.Summary, "The tenant's newest market observation"),
  )
  .add(
    HttpApiEndpoint.post("reportIncident", "/api/ops/incidents")
      .setPayload(ReportIncident)
      .addSuccess(Incident, { status: 201 })
      .pipe(withIdempotencyKey)
      .annotate(OpenApi.Summary, "Report a site incident (appends SiteIncidentReported)"),
  )
  .middleware(Authentication) {}
