/**
 * The peer's own schema, built with its `DatabaseSetup` helper exactly as its README describes: the
 * outbox table, and per mode either a publication + logical slot (WAL) or the next-messages
 * function + indexes (polling). One superuser plays both of its roles here.
 */
import { DatabaseSetup } from "pg-transactional-outbox"

export const pgtoTable = { schema: "public", table: "outbox" } as const
export const pgtoPublication = "pgto_bench_pub"
export const pgtoNextMessages = "next_outbox_messages"

export const pgtoSetupStatements = (
  database: string,
  mode: "wal" | "poll",
  slot: string,
): ReadonlyArray<string> => {
  const base = {
    outboxOrInbox: "outbox" as const,
    database,
    ...pgtoTable,
    listenerRole: "postgres",
  }
  const statements = [DatabaseSetup.dropAndCreateTable(base)]
  if (mode === "wal") {
    const replication = { ...base, publication: pgtoPublication, replicationSlot: slot }
    // The slot must be created in its own transaction (the helper's own note).
    statements.push(DatabaseSetup.setupReplicationCore(replication))
    statements.push(`SELECT pg_create_logical_replication_slot('${slot}', 'pgoutput')`)
  } else {
    const polling = { ...base, nextMessagesName: pgtoNextMessages }
    statements.push(DatabaseSetup.createPollingFunction(polling), DatabaseSetup.setupPollingIndexes(polling))
  }
  return statements
}
