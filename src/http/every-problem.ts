/**
 * HttpApi decodes a request's path, query, headers and body with Effect's default parse options,
 * which stop at the first problem: a client sending a body with three bad fields learns of one,
 * fixes it, and learns of the next. `reportingEveryProblem` gives every schema of every endpoint of
 * an API the `errors: "all"` parse option (a schema annotation, so it holds wherever HttpApi decodes
 * with it), and the edge's 400 lists each path. Applied to the API value itself, so a route added
 * later is covered too. One limit remains HttpApi's: the parts are decoded one after another (path,
 * body, headers, query), and a request is answered with the problems of the first part that fails.
 */
import type { HttpApi, HttpApiEndpoint, HttpApiGroup } from "@effect/platform"
import { Option, type Schema, SchemaAST } from "effect"

/** Annotating drops a schema's identifier (OpenAPI names its component by it): it is given back. */
const everyProblem = <S extends Schema.Schema.Any>(schema: Option.Option<S>) =>
  Option.map(schema, (s) =>
    s.annotations({
      parseOptions: { errors: "all" },
      ...Option.match(SchemaAST.getIdentifierAnnotation(s.ast), {
        onNone: () => ({}),
        onSome: (identifier) => ({ identifier }),
      }),
    }),
  )

/** A copy of `value` (an HttpApi, group or endpoint: a prototype and own fields) with `fields` replaced. */
const withFields = <A extends object>(value: A, fields: Partial<A>): A => {
  // Groups and APIs are constructible functions (so classes can extend them); endpoints are objects.
  function Copy() {}
  const copy = typeof value === "function" ? Copy : {}
  Object.setPrototypeOf(copy, Object.getPrototypeOf(value))
  return Object.assign(copy, value, fields) as A
}

const endpointOf = (e: HttpApiEndpoint.HttpApiEndpoint.AnyWithProps) =>
  withFields(e, {
    pathSchema: everyProblem(e.pathSchema),
    urlParamsSchema: everyProblem(e.urlParamsSchema),
    payloadSchema: everyProblem(e.payloadSchema),
    headersSchema: everyProblem(e.headersSchema),
  })

const groupOf = (g: HttpApiGroup.HttpApiGroup.AnyWithProps) =>
  withFields(g, {
    endpoints: Object.fromEntries(Object.entries(g.endpoints).map(([name, e]) => [name, endpointOf(e)])),
  })

export const reportingEveryProblem = <A extends HttpApi.HttpApi.Any>(api: A): A => {
  const props = api as unknown as HttpApi.HttpApi.AnyWithProps
  return withFields(props, {
    groups: Object.fromEntries(Object.entries(props.groups).map(([name, g]) => [name, groupOf(g)])),
  }) as unknown as A
}
