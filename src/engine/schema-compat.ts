/**
 * The compatibility gate's rules, pure: may the declared schemas read every record written under the
 * snapshot's? A version that exists in both must accept all the snapshot's version accepted — a
 * field removed or renamed (its data lost to every reader), a new required field or an optional one
 * made required (old records lack it), a narrowed type, literal set or bound (old values fail) are
 * breaking; an added optional field, or one with a default, is not. A change that breaks is made
 * as a new version with an upcast, which leaves the snapshot's versions as they were: versions past
 * the snapshot's are new and compared with nothing.
 *
 * The comparison covers the JSON Schema `JSONSchema.make` produces (types, `anyOf`, `enum`/`const`,
 * objects, arrays, tuples, numeric and length bounds, `$ref` into `$defs`); any other keyword that
 * changed is reported, since the gate cannot prove it harmless.
 */
import type { TopicSchemas } from "./schema-export.ts"

export interface Incompatibility {
  readonly topic: string
  readonly eventType: string
  /** Undefined when the whole event type (or topic) is gone. */
  readonly version: number | undefined
  /** The field's path in the payload (`a.b`, `items[]`), "" for the payload itself. */
  readonly field: string
  readonly problem: string
}

type Node = Record<string, unknown>

const annotationKeys = new Set(["title", "description", "examples", "default", "$id", "$comment", "$schema"])
const handledKeys = new Set([
  "type",
  "anyOf",
  "enum",
  "const",
  "properties",
  "required",
  "additionalProperties",
  "items",
  "additionalItems",
  "minItems",
  "maxItems",
  "minimum",
  "maximum",
  "exclusiveMinimum",
  "exclusiveMaximum",
  "multipleOf",
  "minLength",
  "maxLength",
  "$defs",
  "$ref",
])

interface Problem {
  readonly field: string
  readonly problem: string
}

const isNode = (u: unknown): u is Node => typeof u === "object" && u !== null && !Array.isArray(u)

/** A node with its `$ref` replaced by the definition (keywords beside the `$ref` kept). */
const resolve = (node: Node, root: Node, depth = 0): Node => {
  const ref = node.$ref
  if (typeof ref !== "string" || depth > 32) return node
  const name = decodeURIComponent(ref.replace(/^#\/\$defs\//, ""))
  const target = (root.$defs as Record<string, Node> | undefined)?.[name]
  const { $ref: _, ...rest } = node
  return target ? { ...resolve(target, root, depth + 1), ...rest } : rest
}

const typesOf = (n: Node): ReadonlySet<string> | undefined => {
  if (n.type === undefined) return undefined
  return new Set(Array.isArray(n.type) ? (n.type as Array<string>) : [n.type as string])
}

const literalsOf = (n: Node): ReadonlyArray<unknown> | undefined =>
  Array.isArray(n.enum) ? n.enum : "const" in n ? [n.const] : undefined

const show = (u: unknown) => JSON.stringify(u)
const join = (path: string, key: string) => (path === "" ? key : `${path}.${key}`)
const kindOf = (n: Node) => [...(typesOf(n) ?? ["any"])].sort().join("|")

interface Bound {
  readonly value: number
  readonly exclusive: boolean
}
const lowerOf = (n: Node): Bound | undefined => {
  const inclusive = typeof n.minimum === "number" ? n.minimum : undefined
  const exclusive = typeof n.exclusiveMinimum === "number" ? n.exclusiveMinimum : undefined
  if (inclusive === undefined && exclusive === undefined) return undefined
  if (exclusive !== undefined && (inclusive === undefined || exclusive >= inclusive))
    return { value: exclusive, exclusive: true }
  return { value: inclusive!, exclusive: false }
}
const upperOf = (n: Node): Bound | undefined => {
  const inclusive = typeof n.maximum === "number" ? n.maximum : undefined
  const exclusive = typeof n.exclusiveMaximum === "number" ? n.exclusiveMaximum : undefined
  if (inclusive === undefined && exclusive === undefined) return undefined
  if (exclusive !== undefined && (inclusive === undefined || exclusive <= inclusive))
    return { value: exclusive, exclusive: true }
  return { value: inclusive!, exclusive: false }
}
const showBound = (b: Bound | undefined, side: "min" | "max") =>
  b === undefined
    ? "none"
    : `${side === "min" ? (b.exclusive ? ">" : ">=") : b.exclusive ? "<" : "<="} ${b.value}`

/** Problems of reading with `next` what was written under `prev` (both resolved against their roots). */
const compare = (
  prevIn: Node,
  nextIn: Node,
  roots: { prev: Node; next: Node },
  path: string,
): Array<Problem> => {
  const prev = resolve(prevIn, roots.prev)
  const next = resolve(nextIn, roots.next)
  const problems: Array<Problem> = []
  const narrowed = (what: string) => problems.push({ field: path, problem: `narrowed ${what}` })

  if (Array.isArray(prev.anyOf) || Array.isArray(next.anyOf)) {
    const prevBranches = (Array.isArray(prev.anyOf) ? prev.anyOf : [prev]) as Array<Node>
    const nextBranches = (Array.isArray(next.anyOf) ? next.anyOf : [next]) as Array<Node>
    for (const branch of prevBranches) {
      const attempts = nextBranches.map((candidate) => compare(branch, candidate, roots, path))
      if (attempts.some((a) => a.length === 0)) continue
      const sameKind = nextBranches.findIndex(
        (c) => kindOf(resolve(c, roots.next)) === kindOf(resolve(branch, roots.prev)),
      )
      if (sameKind >= 0) problems.push(...attempts[sameKind]!)
      else narrowed(`type: ${kindOf(resolve(branch, roots.prev))} is no longer accepted`)
    }
    return problems
  }

  const prevTypes = typesOf(prev)
  const nextTypes = typesOf(next)
  if (nextTypes !== undefined) {
    const lost =
      prevTypes === undefined
        ? ["any"]
        : [...prevTypes].filter((t) => !nextTypes.has(t) && !(t === "integer" && nextTypes.has("number")))
    if (lost.length > 0) narrowed(`type: ${kindOf(prev)} → ${kindOf(next)}`)
  }

  const nextLiterals = literalsOf(next)
  if (nextLiterals !== undefined) {
    const prevLiterals = literalsOf(prev)
    if (prevLiterals === undefined) narrowed(`literal set: any value → ${show(nextLiterals)}`)
    else {
      const kept = new Set(nextLiterals.map(show))
      const dropped = prevLiterals.filter((l) => !kept.has(show(l)))
      if (dropped.length > 0) narrowed(`literal set: ${show(dropped)} no longer accepted`)
    }
  }

  const prevLower = lowerOf(prev)
  const nextLower = lowerOf(next)
  if (
    nextLower !== undefined &&
    (prevLower === undefined ||
      nextLower.value > prevLower.value ||
      (nextLower.value === prevLower.value && nextLower.exclusive && !prevLower.exclusive))
  )
    narrowed(`lower bound: ${showBound(prevLower, "min")} → ${showBound(nextLower, "min")}`)
  const prevUpper = upperOf(prev)
  const nextUpper = upperOf(next)
  if (
    nextUpper !== undefined &&
    (prevUpper === undefined ||
      nextUpper.value < prevUpper.value ||
      (nextUpper.value === prevUpper.value && nextUpper.exclusive && !prevUpper.exclusive))
  )
    narrowed(`upper bound: ${showBound(prevUpper, "max")} → ${showBound(nextUpper, "max")}`)
  if (typeof next.multipleOf === "number") {
    const m = prev.multipleOf
    if (typeof m !== "number" || m % next.multipleOf !== 0)
      narrowed(`multipleOf: ${m ?? "none"} → ${next.multipleOf}`)
  }
  for (const [min, max, what] of [
    ["minLength", "maxLength", "length"],
    ["minItems", "maxItems", "item count"],
  ] as const) {
    const nMin = next[min]
    const pMin = prev[min]
    if (typeof nMin === "number" && (typeof pMin !== "number" || nMin > pMin))
      narrowed(`${what}: at least ${pMin ?? 0} → at least ${nMin}`)
    const nMax = next[max]
    const pMax = prev[max]
    if (typeof nMax === "number" && (typeof pMax !== "number" || nMax < pMax))
      narrowed(`${what}: at most ${pMax ?? "any"} → at most ${nMax}`)
  }

  if (isNode(prev.properties) || isNode(next.properties))
    problems.push(...compareObjects(prev, next, roots, path))

  if (isNode(next.items) && isNode(prev.items))
    problems.push(...compare(prev.items, next.items, roots, `${path}[]`))
  else if (Array.isArray(next.items) || Array.isArray(prev.items)) {
    const p = (Array.isArray(prev.items) ? prev.items : []) as Array<Node>
    const n = (Array.isArray(next.items) ? next.items : []) as Array<Node>
    if (p.length !== n.length) narrowed(`tuple: ${p.length} → ${n.length} elements`)
    else for (const [i, e] of p.entries()) problems.push(...compare(e, n[i]!, roots, `${path}[${i}]`))
  }
  if (isNode(prev.additionalProperties) && isNode(next.additionalProperties))
    problems.push(...compare(prev.additionalProperties, next.additionalProperties, roots, `${path}{}`))

  for (const key of new Set([...Object.keys(prev), ...Object.keys(next)])) {
    if (annotationKeys.has(key) || handledKeys.has(key)) continue
    if (show(prev[key]) !== show(next[key]))
      problems.push({ field: path, problem: `changed '${key}': ${show(prev[key])} → ${show(next[key])}` })
  }
  return problems
}

const compareObjects = (prev: Node, next: Node, roots: { prev: Node; next: Node }, path: string) => {
  const problems: Array<Problem> = []
  const prevProps = (isNode(prev.properties) ? prev.properties : {}) as Record<string, Node>
  const nextProps = (isNode(next.properties) ? next.properties : {}) as Record<string, Node>
  const prevRequired = new Set((prev.required as Array<string> | undefined) ?? [])
  const nextRequired = new Set((next.required as Array<string> | undefined) ?? [])
  const removed = Object.keys(prevProps).filter((k) => !(k in nextProps))
  const added = Object.keys(nextProps).filter((k) => !(k in prevProps) && nextRequired.has(k))
  const renamedTo = removed.length === 1 && added.length === 1 ? added[0] : undefined
  for (const key of removed)
    problems.push({
      field: join(path, key),
      problem: renamedTo ? `removed (renamed to '${renamedTo}'?)` : "removed",
    })
  for (const [key, schema] of Object.entries(nextProps)) {
    const before = prevProps[key]
    if (before === undefined) {
      if (nextRequired.has(key)) problems.push({ field: join(path, key), problem: "new required field" })
      continue
    }
    if (nextRequired.has(key) && !prevRequired.has(key))
      problems.push({ field: join(path, key), problem: "optional field made required" })
    problems.push(...compare(before, schema, roots, join(path, key)))
  }
  return problems
}

/** Whether `next` reads everything `prev` accepted; the problems if not. */
export const schemaProblems = (prev: object, next: object): ReadonlyArray<Problem> =>
  compare(prev as Node, next as Node, { prev: prev as Node, next: next as Node }, "")

/** Everything in `declared` that breaks records written under `snapshot`. */
export const incompatibilities = (
  snapshot: ReadonlyArray<TopicSchemas>,
  declared: ReadonlyArray<TopicSchemas>,
): ReadonlyArray<Incompatibility> => {
  const out: Array<Incompatibility> = []
  const declaredByTopic = new Map(declared.map((t) => [t.topic, t]))
  for (const old of snapshot) {
    const now = declaredByTopic.get(old.topic)
    for (const [eventType, was] of Object.entries(old.events)) {
      const is = now?.events[eventType]
      if (is === undefined) {
        out.push({
          topic: old.topic,
          eventType,
          version: undefined,
          field: "",
          problem: now ? "event type removed" : "topic removed",
        })
        continue
      }
      for (const [v, schema] of Object.entries(was.versions)) {
        const version = Number(v)
        const current = is.versions[v]
        if (current === undefined) {
          out.push({ topic: old.topic, eventType, version, field: "", problem: "version removed" })
          continue
        }
        for (const p of schemaProblems(schema, current))
          out.push({ topic: old.topic, eventType, version, ...p })
      }
    }
  }
  return out
}

export const formatIncompatibility = (i: Incompatibility) =>
  `${i.topic} ${i.eventType}${i.version === undefined ? "" : ` v${i.version}`}${i.field === "" ? "" : ` field '${i.field}'`}: ${i.problem}`
