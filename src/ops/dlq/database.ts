/**
 * The operator CLI's database connection: a small pool with a short connect timeout, so an
 * unreachable database is one clear line within seconds instead of a hang or a stack trace.
 */
import { PgClient } from "@effect/sql-pg"
import { Duration, Effect, Layer, Schema } from "effect"
import { AppConfig, describeConfig } from "../../platform/config.ts"

export class DatabaseUnreachable extends Schema.TaggedError<DatabaseUnreachable>()("DatabaseUnreachable", {
  url: Schema.String,
  reason: Schema.String,
}) {
  override get message() {
    return `database unreachable at ${this.url}: ${this.reason}`
  }
}

const reasonOf = (error: { readonly message: string; readonly cause?: unknown }): string => {
  const cause = error.cause
  if (cause instanceof AggregateError && cause.errors[0] instanceof Error) return cause.errors[0].message
  if (cause instanceof Error && cause.message !== "") return cause.message
  return error.message
}

const layerConfig = Layer.unwrapEffect(
  Effect.map(AppConfig, (config) =>
    PgClient.layer({
      url: config.databaseUrl,
      maxConnections: 4,
      connectTimeout: Duration.seconds(3),
      applicationName: "hashinsight-dlq",
    }).pipe(
      Layer.mapError(
        (error) =>
          new DatabaseUnreachable({ url: describeConfig(config).databaseUrl, reason: reasonOf(error) }),
      ),
    ),
  ),
)

export const OperatorDb = { layerConfig }
