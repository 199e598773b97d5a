/** Plain-text tables for the operator CLIs (`dlq`, `lag`). */
export type Cell = string | number
export type Column<A> = readonly [header: string, cell: (row: A) => Cell]

/**
 * Number columns right-aligned (their header too; `-` stands for a missing number), text
 * left-aligned, a rule under the header.
 */
export const table = <A>(rows: ReadonlyArray<A>, columns: ReadonlyArray<Column<A>>): string => {
  const cells = rows.map((r) => columns.map(([, f]) => f(r)))
  const widths = columns.map(([h], i) => Math.max(h.length, ...cells.map((c) => String(c[i]).length)))
  const numeric = columns.map(
    (_, i) =>
      cells.some((c) => typeof c[i] === "number") &&
      cells.every((c) => typeof c[i] === "number" || c[i] === "-"),
  )
  const line = (values: ReadonlyArray<Cell>) =>
    values
      .map((v, i) => (numeric[i] ? String(v).padStart(widths[i]!) : String(v).padEnd(widths[i]!)))
      .join("  ")
      .trimEnd()
  return [
    line(columns.map(([h]) => h)),
    widths.map((w) => "-".repeat(w)).join("  "),
    ...cells.map(line),
  ].join("\n")
}
