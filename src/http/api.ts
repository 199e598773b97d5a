/**
 * The HashInsight HTTP API as one `HttpApi` value: the server, `/openapi.json` and `/docs` are all
 * derived from it. Problems every route can answer with are declared here once.
 */
import { HttpApi, OpenApi } from "@effect/platform"
import { MinersGroup } from "../hashinsight/miners/api.ts"
import {
  InternalProblem,
  MalformedBody,
  NotFound,
  PayloadTooLarge,
  ServiceUnavailable,
  Unauthorized,
  UnsupportedMediaType,
  ValidationProblem,
} from "./problem.ts"

export class HashInsightApi extends HttpApi.make("hashinsight")
  .add(MinersGroup)
  .addError(ValidationProblem)
  .addError(MalformedBody)
  .addError(Unauthorized)
  .addError(NotFound)
  .addError(PayloadTooLarge)
  .addError(UnsupportedMediaType)
  .addError(ServiceUnavailable)
  .addError(InternalProblem)
  .annotate(OpenApi.Title, "HashInsight API")
  .annotate(
    OpenApi.Description,
    "Mining-portfolio API. Authenticate with `Authorization: Bearer <api key>`; errors are application/problem+json.",
  ) {}
