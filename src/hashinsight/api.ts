/**
 * The HashInsight HTTP API as one `HttpApi` value: the server, `/openapi.json` and `/docs` are all
 * derived from it. Problems every route can answer with are declared here once: the edge's own, and
 * the domain's 404, whose document is also what the edge answers for a path it does not serve. A
 * request that does not match a route's schemas is answered with every problem at once.
 */
import { HttpApi, OpenApi } from "@effect/platform"
import { reportingEveryProblem } from "../http/every-problem.ts"
import {
  InternalProblem,
  MalformedBody,
  PayloadTooLarge,
  ServiceUnavailable,
  Unauthorized,
  UnsupportedMediaType,
  ValidationProblem,
} from "../http/problem.ts"
import { schemasGroup } from "../http/schemas-api.ts"
import { observeGroup } from "../observe/api.ts"
import { CatalogueGroup } from "./catalogue/api.ts"
import { CrmGroup } from "./crm/api.ts"
import { ForecastsGroup } from "./forecasts/api.ts"
import { healthChecks } from "./health.ts"
import { MinersGroup } from "./miners/api.ts"
import { OpsGroup } from "./ops/api.ts"
import { PortfolioGroup } from "./portfolio/api.ts"
import { NotFoundProblem } from "./problems.ts"
import { TreasuryGroup } from "./treasury/api.ts"

export class HashInsightApi extends reportingEveryProblem(
  HttpApi.make("hashinsight")
    .add(CatalogueGroup)
    .add(MinersGroup)
    .add(PortfolioGroup)
    .add(ForecastsGroup)
    .add(OpsGroup)
    .add(TreasuryGroup)
    .add(CrmGroup)
    .add(observeGroup(Object.keys(healthChecks)))
    .add(schemasGroup)
    .addError(ValidationProblem)
    .addError(MalformedBody)
    .addError(Unauthorized)
    .addError(NotFoundProblem)
    .addError(PayloadTooLarge)
    .addError(UnsupportedMediaType)
    .addError(ServiceUnavailable)
    .addError(InternalProblem)
    .annotate(OpenApi.Title, "HashInsight API")
    .annotate(
      OpenApi.Description,
      "Mining-portfolio API. Authenticate with `Authorization: Bearer <api key>`; errors are application/problem+json.",
    ),
) {}
