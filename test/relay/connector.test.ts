import { describe, expect, test } from "bun:test"
import { readFileSync } from "node:fs"
import { join } from "node:path"
import { SqlClient } from "@effect/sql"
import { Effect } from "effect"
import { toKafkaMessage, versionHeader } from "../../src/engine/record.ts"
import { relayDefaults } from "../../src/engine/relay/index.ts"
import { topicNameOf } from "../../src/engine/topic.ts"
import { topics } from "../../src/hashinsight/topics.ts"
import { projectRoot } from "../../src/platform/project-root.ts"
import { effectTest } from "../support/effect.ts"

const connector = JSON.parse(readFileSync(join(projectRoot, "connectors/outbox-connector.json"), "utf8")) as {
  name: string
  config: Record<string, string>
}
const config = connector.config
// biome-ignore lint/suspicious/noTemplateCurlyInString: Debezium's placeholder, not a template
const routedByValue = "${routedByValue}"
const router = (key: string) => config[`transforms.outbox.${key}`]

/** `type:header:eventType,...` → { column: header } */
const headerPlacement = Object.fromEntries(
  (router("table.fields.additional.placement") ?? "").split(",").map((entry) => {
    const [column, placement, alias] = entry.split(":")
    expect(placement).toBe("header")
    return [column!, alias ?? column!]
  }),
)

describe("Debezium outbox connector config", () => {
  test("is a Postgres connector on our publication and outbox table, with its own slot", () => {
    expect(config["connector.class"]).toBe("io.debezium.connector.postgresql.PostgresConnector")
    expect(config["plugin.name"]).toBe("pgoutput")
    expect(config["publication.name"]).toBe(relayDefaults.publication)
    expect(config["publication.autocreate.mode"]).toBe("disabled")
    expect(config["table.include.list"]).toBe("public.event_outbox")
    expect(config["database.hostname"]).toBe("postgres")
    expect(config["database.dbname"]).toBe("hashinsight")
    expect(config["slot.name"]).not.toBe(relayDefaults.slot)
    expect(config.transforms).toBe("outbox")
    expect(router("type")).toBe("io.debezium.transforms.outbox.EventRouter")
  })

  test("routes every registered topic to the name our relay uses", () => {
    expect(router("route.by.field")).toBe("aggregatetype")
    for (const topic of topics) {
      const routed = router("route.topic.replacement")!.replace(routedByValue, topic.aggregatetype)
      expect(routed).toBe(topic.name)
      expect(routed).toBe(topicNameOf(topic.aggregatetype))
    }
  })

  test("produces our record format: key aggregateid, JSON payload value, the same headers", () => {
    expect(router("table.field.event.key")).toBe("aggregateid")
    expect(router("table.field.event.payload")).toBe("payload")
    expect(router("table.expand.json.payload")).toBe("true")
    expect(config["key.converter"]).toBe("org.apache.kafka.connect.storage.StringConverter")
    expect(config["value.converter"]).toBe("org.apache.kafka.connect.json.JsonConverter")
    expect(config["value.converter.schemas.enable"]).toBe("false")
    expect(headerPlacement).toEqual({
      type: "eventType",
      tenant_id: "tenantId",
      event_version: versionHeader,
      traceparent: "traceparent",
    })

    // The headers our relay writes are exactly Debezium's: the event id header plus the placements.
    const message = toKafkaMessage({
      id: "0190f0a4-0000-7000-8000-000000000001",
      aggregatetype: "miner",
      aggregateid: "miner-1",
      type: "MinerAdded",
      payload: "{}",
      tenantId: "6f0c1e0a-4b1d-4c5e-9a77-5d0b6b0c0a01",
      traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
      eventVersion: 2,
    })
    const eventIdHeader = router("table.field.event.id")
    expect(eventIdHeader).toBe("id")
    expect(Object.keys(message.headers ?? {}).sort()).toEqual(
      [eventIdHeader!, ...Object.values(headerPlacement)].sort(),
    )
    expect(message.key).toBe("miner-1")
    // Debezium's StringConverter writes an integer column as its decimal text, as we do.
    expect(message.headers?.[versionHeader]).toBe("2")
  })

  effectTest("names only columns event_outbox has", () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const rows = yield* sql<{ column_name: string }>`
        SELECT column_name FROM information_schema.columns
        WHERE table_schema = 'public' AND table_name = 'event_outbox'`
      const columns = new Set(rows.map((r) => r.column_name))
      const named = [
        router("table.field.event.id"),
        router("table.field.event.key"),
        router("table.field.event.payload"),
        router("route.by.field"),
        ...Object.keys(headerPlacement),
      ]
      for (const column of named) expect(columns.has(column!)).toBe(true)
    }),
  )
})
