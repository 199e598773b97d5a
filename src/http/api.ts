/**
 * The HashInsight HTTP API as one `HttpApi` value: the server, `/openapi.json` and `/docs` are all
 * derived from it. Problems every route can answer with are declared here once.
 */
import { HttpApi, OpenApi } from "@effect/platform"
import { CatalogueGroup } from "../hashinsight/catalogue/api.ts"
import { CrmGroup } from "../hashinsight/crm/api.ts"
import { ForecastsGroup } from "../hashinsight/forecasts/api.ts"
import { MinersGroup } from "../hashinsight/miners/api.ts"
import { OpsGroup } from "../hashinsight/ops/api.ts"
import { PortfolioGroup } from "../hashinsight/portfolio/api.ts"
import { NotFoundProblem } from "../hashinsight/problems.ts"
import { TreasuryGroup } from "../hashinsight/treasury/api.ts"
import { ObserveGroup } from "../observe/api.ts"
import {
  InternalProblem,
  MalformedBody,
  PayloadTooLarge,
  ServiceUnavailable,
  Unauthorized,
  UnsupportedMediaType,
  ValidationProblem,
} from "./problem.ts"

export class HashInsightApi extends HttpApi.make("hashinsight")
  .add(CatalogueGroup)
  .add(MinersGroup)
  .add(PortfolioGroup)
  .add(ForecastsGroup)
  .add(OpsGroup)
  .add(TreasuryGroup)
  .add(CrmGroup)
  .add(ObserveGroup)
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
  ) {}
