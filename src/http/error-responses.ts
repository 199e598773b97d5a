/**
 * The response an HttpApi answers each error it declares with, as bytes to keep: a rejected keyed
 * write is recorded with it, so its replay is what HttpApi sent. Built the way HttpApiBuilder
 * encodes a failure — every error Schema of the API, its groups and endpoints, each with its status
 * annotation and encoding — so both come from the one declaration.
 */
import { type HttpApi, HttpApiSchema } from "@effect/platform"
import { Context, Layer, type Option, ParseResult, Schema } from "effect"
import type { StoredResponse } from "./idempotency-store.ts"

const Stored = Schema.declare(
  (u: unknown): u is StoredResponse => typeof u === "object" && u !== null && "status" in u && "body" in u,
)

const asStored = (schema: Schema.Schema.Any) =>
  Schema.transformOrFail(Stored, schema, {
    strict: false,
    decode: (response, _, ast) => ParseResult.fail(new ParseResult.Forbidden(ast, response, "encode only")),
    encode: (encoded, _, ast) => {
      const encoding = HttpApiSchema.getEncoding(ast.to)
      const status = HttpApiSchema.getStatusErrorAST(ast.to)
      if (HttpApiSchema.isVoid(ast.to)) return ParseResult.succeed({ status, contentType: "", body: "" })
      if (encoding.kind !== "Json")
        return ParseResult.fail(new ParseResult.Type(ast, encoded, `a ${encoding.kind} body is not kept`))
      return ParseResult.succeed({ status, contentType: encoding.contentType, body: JSON.stringify(encoded) })
    },
  })

export class ErrorResponses extends Context.Tag("hashinsight/http/ErrorResponses")<
  ErrorResponses,
  {
    /** The response `error` is answered with, when the API declares it. */
    readonly of: (error: unknown) => Option.Option<StoredResponse>
  }
>() {
  static readonly layer = (api: HttpApi.HttpApi.Any) => {
    // The props every HttpApi has, which its `Any` does not show (HttpApiBuilder reads them so too).
    const { errorSchema, groups } = api as unknown as HttpApi.HttpApi.AnyWithProps
    const declared = new Set<Schema.Schema.Any>()
    HttpApiSchema.deunionize(declared, errorSchema)
    for (const group of Object.values(groups)) {
      for (const endpoint of Object.values(group.endpoints))
        HttpApiSchema.deunionize(declared, endpoint.errorSchema)
      HttpApiSchema.deunionize(declared, group.errorSchema)
    }
    // Encoded synchronously, without services: an error Schema that needed one could not be kept.
    const encode = Schema.encodeUnknownOption(
      Schema.Union(...Array.from(declared, asStored)) as Schema.Schema<unknown, StoredResponse>,
    )
    return Layer.succeed(ErrorResponses, ErrorResponses.of({ of: (error) => encode(error) }))
  }
}
