/**
 * A benchmark's flags, declared once with their defaults and meaning: `--name value` or
 * `--name=value` (a switch: `--name`). `--help` prints the bench's usage and exits 0; an unknown
 * flag, a missing value or a value the flag does not take prints what was wrong and the usage, and
 * exits 2 — before anything is started. `bun run chaos` parses its flags, and the scenarios it takes
 * as arguments, the same way.
 */
import { parseArgs } from "node:util"

type Flag =
  | { readonly kind: "number"; readonly default: number; readonly help: string }
  | { readonly kind: "switch"; readonly default: boolean; readonly help: string }
  | { readonly kind: "numbers"; readonly default: ReadonlyArray<number>; readonly help: string }
  | {
      readonly kind: "choice"
      readonly choices: ReadonlyArray<string>
      readonly default: string | undefined
      readonly help: string
    }
  | {
      readonly kind: "choices"
      readonly choices: ReadonlyArray<string>
      readonly default: ReadonlyArray<string>
      readonly help: string
    }

/** A positive number. */
export const number = (fallback: number, help: string) =>
  ({ kind: "number", default: fallback, help }) as const
/** Off unless given. */
export const toggle = (help: string) => ({ kind: "switch", default: false, help }) as const
/** Positive numbers, comma-separated; an empty value is an empty list. */
export const numbers = (fallback: ReadonlyArray<number>, help: string) =>
  ({ kind: "numbers", default: fallback, help }) as const
/** One of `choices`, or unset. */
export const choice = <C extends string>(choices: ReadonlyArray<C>, help: string) =>
  ({ kind: "choice", choices, default: undefined as C | undefined, help }) as const
/** Some of `choices`, comma-separated. */
export const choices = <C extends string>(all: ReadonlyArray<C>, fallback: ReadonlyArray<C>, help: string) =>
  ({ kind: "choices", choices: all, default: fallback, help }) as const

type Value<F> = F extends { readonly kind: "number" }
  ? number
  : F extends { readonly kind: "switch" }
    ? boolean
    : F extends { readonly kind: "numbers" }
      ? ReadonlyArray<number>
      : F extends { readonly kind: "choice"; readonly default: infer D }
        ? D
        : F extends { readonly kind: "choices"; readonly default: ReadonlyArray<infer C> }
          ? ReadonlyArray<C>
          : never

const shown = (flag: Flag) => {
  switch (flag.kind) {
    case "number":
      return { value: "N", fallback: String(flag.default) }
    case "switch":
      return { value: "", fallback: undefined }
    case "numbers":
      return { value: "N,N,…", fallback: flag.default.join(",") }
    case "choice":
      return { value: flag.choices.join("|"), fallback: flag.default }
    case "choices":
      return { value: flag.choices.join(","), fallback: flag.default.join(",") }
  }
}

/** Arguments a command takes besides its flags: some of `choices`, in any order; none means all. */
export interface Positionals {
  readonly name: string
  readonly choices: ReadonlyArray<string>
}

const usageOf = (command: string, flags: Flags, positionals?: Positionals) => {
  const lines = Object.entries(flags).map(([name, flag]) => {
    const { value, fallback } = shown(flag)
    return {
      left: `--${name}${value ? ` ${value}` : ""}`,
      right: `${flag.help}${fallback ? ` (default ${fallback})` : ""}`,
    }
  })
  const width = Math.max(0, ...lines.map((l) => l.left.length))
  return [
    `usage: ${command}${positionals ? ` [${positionals.name}…]` : ""}${lines.length > 0 ? " [flags]" : ""}`,
    ...(positionals ? [`  ${positionals.name}: ${positionals.choices.join(", ")} (default all)`] : []),
    ...lines.map((l) => `  ${l.left.padEnd(width)}  ${l.right}`),
  ].join("\n")
}

const positive = (name: string, text: string) => {
  const n = Number(text)
  if (text.trim() === "" || !Number.isFinite(n) || n <= 0)
    throw new Error(`--${name} takes a positive number, not '${text}'`)
  return n
}

const parse = (name: string, flag: Flag, text: string | undefined): unknown => {
  if (text === undefined) return flag.default
  switch (flag.kind) {
    case "switch":
      return true
    case "number":
      return positive(name, text)
    case "numbers":
      return text
        .split(",")
        .filter((s) => s.trim() !== "")
        .map((s) => positive(name, s))
    case "choice":
      if (!flag.choices.includes(text))
        throw new Error(`--${name} takes one of ${flag.choices.join(", ")}, not '${text}'`)
      return text
    case "choices": {
      const picked = text.split(",").filter((s) => s !== "")
      const unknown = picked.filter((s) => !flag.choices.includes(s))
      if (picked.length === 0 || unknown.length > 0)
        throw new Error(`--${name} takes some of ${flag.choices.join(", ")}, not '${text}'`)
      return picked
    }
  }
}

/** A bench's declared flags (`export const flags = { rate: number(…), … }`). */
export type Flags = Record<string, Flag>
/** What a bench's `run` gets: each flag's value, or its default. */
export type FlagValues<S extends Flags> = { readonly [K in keyof S]: Value<S[K]> }

/**
 * A command's flags and arguments read from `args`, or the usage printed and the process ended.
 * `command` is how the usage names it (`bun run chaos`).
 */
export const commandArgs = <S extends Flags>(
  command: string,
  args: ReadonlyArray<string>,
  flags: S,
  positionals?: Positionals,
): { readonly flags: FlagValues<S>; readonly positionals: ReadonlyArray<string> } => {
  const usage = usageOf(command, flags, positionals)
  try {
    const parsed = parseArgs({
      args: [...args],
      strict: true,
      allowPositionals: positionals !== undefined,
      options: {
        help: { type: "boolean", short: "h" },
        ...Object.fromEntries(
          Object.entries(flags).map(([name, flag]) => [
            name,
            { type: flag.kind === "switch" ? ("boolean" as const) : ("string" as const) },
          ]),
        ),
      },
    })
    if (parsed.values.help === true) {
      console.log(usage)
      process.exit(0)
    }
    const unknown = parsed.positionals.filter((p) => !positionals?.choices.includes(p))
    if (unknown.length > 0)
      throw new Error(`unknown ${positionals?.name ?? "argument"}: ${unknown.join(", ")}`)
    const values = Object.fromEntries(
      Object.entries(flags).map(([name, flag]) => {
        const given = (parsed.values as Record<string, unknown>)[name]
        return [name, parse(name, flag, given === true ? "" : (given as string | undefined))]
      }),
    ) as FlagValues<S>
    return { flags: values, positionals: parsed.positionals }
  } catch (e) {
    console.error(`${e instanceof Error ? e.message : String(e)}\n\n${usage}`)
    process.exit(2)
  }
}

/** The flags of `bench` read from `args`, or the usage printed and the process ended. */
export const benchFlags = <S extends Flags>(
  bench: string,
  args: ReadonlyArray<string>,
  flags: S,
): FlagValues<S> => commandArgs(`bun run bench ${bench}`, args, flags).flags
