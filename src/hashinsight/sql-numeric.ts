/**
 * PostgreSQL `numeric` and `bigint` arrive from `pg` as strings (exact decimals); the domain
 * computes in JS numbers, which is exact enough for BTC, watts and USD figures.
 */
import { Schema } from "effect"

export const Numeric = Schema.Union(Schema.Number, Schema.NumberFromString)
export const NullableNumeric = Schema.NullOr(Numeric)
