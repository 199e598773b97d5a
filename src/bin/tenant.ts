/** `bun run tenant create <name>` — creates a tenant and prints its API key (shown only this once). */
import { Args, Command } from "@effect/cli"
import { BunContext } from "@effect/platform-bun"
import { Console, Effect, Layer, Redacted } from "effect"
import { createTenant } from "../http/tenants.ts"
import { Platform } from "../platform/layers.ts"
import { runMain } from "./main.ts"

const create = Command.make("create", { name: Args.text({ name: "name" }) }, ({ name }) =>
  Effect.gen(function* () {
    const tenant = yield* createTenant(name)
    yield* Console.error(`tenant '${tenant.name}' created; keep the key, it is not stored`)
    yield* Console.log(`TENANT_ID=${tenant.id}\nAPI_KEY=${Redacted.value(tenant.apiKey)}`)
  }),
).pipe(Command.withDescription("Create a tenant and print its API key"))

const cli = Command.run(Command.make("tenant").pipe(Command.withSubcommands([create])), {
  name: "tenant",
  version: "0.1.0",
})

runMain(cli(process.argv), Layer.mergeAll(Platform.layerDb, BunContext.layer))
