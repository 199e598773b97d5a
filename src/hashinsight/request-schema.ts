/**
 * Building blocks of what the routes accept. Every text is bounded and free of NUL and every date
 * within PostgreSQL's range, so bad input is a 400 at the edge and never a database error (a 503).
 */
import { Schema } from "effect"

export const Text = (max: number) =>
  Schema.String.pipe(
    Schema.minLength(1),
    Schema.maxLength(max),
    Schema.filter((s) => !s.includes("\u0000") || "must not contain NUL characters"),
  )

/** An observation time: a JS Date can reach years PostgreSQL's timestamptz cannot store. */
export const At = Schema.Date.pipe(
  Schema.betweenDate(new Date("1970-01-01T00:00:00Z"), new Date("2200-01-01T00:00:00Z")),
).annotations({ description: "ISO 8601 time between 1970 and 2200; defaults to now" })
