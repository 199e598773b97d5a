/**
 * The engine in one file (docs/engine.md quotes it whole; test/docs/engine-example.test.ts runs it):
 * a topic, a business write that appends its event in the same transaction, a consumer with a
 * retry policy and a lock key, and the relay and a member that deliver it. `bun docs/examples/quickstart.ts`
 * places one order on the embedded stack and keeps relaying and consuming until Ctrl-C.
 */
import { SqlClient } from "@effect/sql"
import { Effect, Layer, Redacted, Schema } from "effect"
import { runMain } from "../../src/bin/main.ts"
import {
  decodeRetryPolicy,
  defaultSlotFor,
  defineConsumer,
  defineTopic,
  memberLayer,
  Outbox,
  on,
  relayDefaults,
  runRelay,
} from "../../src/engine/index.ts"
import { AppConfig } from "../../src/platform/config.ts"
import { withTenant } from "../../src/platform/db.ts"
import { Platform } from "../../src/platform/layers.ts"

// 1. A topic: its aggregate type names the Kafka topic (`events.order`); one payload Schema per event type.
export const orderTopic = defineTopic("order", {
  OrderPlaced: Schema.Struct({
    orderId: Schema.UUID,
    customerId: Schema.String,
    totalCents: Schema.Int.pipe(Schema.nonNegative()),
  }),
})

// The application's tables, tenant tables under RLS like the engine's own (in a service: a migration).
export const createTables = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  yield* sql`CREATE TABLE IF NOT EXISTS orders (
    id uuid PRIMARY KEY, tenant_id uuid NOT NULL, customer_id text NOT NULL, total_cents int NOT NULL)`
  yield* sql`CREATE TABLE IF NOT EXISTS loyalty_points (
    tenant_id uuid NOT NULL, customer_id text NOT NULL, points int NOT NULL, PRIMARY KEY (tenant_id, customer_id))`
  for (const table of ["orders", "loyalty_points"]) {
    yield* sql.unsafe(`GRANT SELECT, INSERT, UPDATE ON ${table} TO hashinsight_app`)
    yield* sql.unsafe(`ALTER TABLE ${table} ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY`)
    yield* sql.unsafe(`DROP POLICY IF EXISTS tenant_isolation ON ${table}`)
    yield* sql.unsafe(`CREATE POLICY tenant_isolation ON ${table} USING (tenant_id = app_current_tenant())`)
  }
})

// 2. The business write: the order and its event commit together, or neither does.
export const placeOrder = (tenantId: string, order: typeof orderTopic.events.OrderPlaced.Type) =>
  withTenant(tenantId)(
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const outbox = yield* Outbox
      yield* sql`INSERT INTO orders (id, tenant_id, customer_id, total_cents)
                 VALUES (${order.orderId}, ${tenantId}, ${order.customerId}, ${order.totalCents})`
      const [eventId] = yield* outbox.append(orderTopic, [
        { type: "OrderPlaced", aggregateId: order.orderId, tenantId, payload: order },
      ])
      return eventId!
    }),
  )

// 3. A consumer: a point per whole dollar, each order once however often Kafka delivers it.
export const loyaltyConsumer = defineConsumer({
  name: "loyalty",
  group: "loyalty-group",
  retry: decodeRetryPolicy({ maxAttempts: 5, baseDelayMs: 100, factor: 2, capMs: 2_000, jitter: 0.2 }),
  subscriptions: [
    on(
      orderTopic,
      {
        OrderPlaced: (order, meta) =>
          Effect.flatMap(
            SqlClient.SqlClient,
            (sql) => sql`
              INSERT INTO loyalty_points (tenant_id, customer_id, points)
              VALUES (${meta.tenantId}, ${order.customerId}, ${Math.floor(order.totalCents / 100)})
              ON CONFLICT (tenant_id, customer_id)
              DO UPDATE SET points = loyalty_points.points + excluded.points`,
          ),
      },
      // One customer's events are handled under one lock, fenced at commit.
      { lockKey: (order) => `lock:customer:${order.customerId}` },
    ),
  ],
})

// 4. Run it: the relay (WAL mode) and one member of the group, for as long as the layer lives.
export const quickstart = (databaseUrl: Redacted.Redacted<string>) =>
  Layer.mergeAll(
    memberLayer(loyaltyConsumer),
    Layer.scopedDiscard(
      Effect.forkScoped(
        runRelay({ ...relayDefaults, slot: defaultSlotFor(Redacted.value(databaseUrl)), databaseUrl }),
      ),
    ),
  )

if (import.meta.main)
  runMain(
    Effect.gen(function* () {
      const { databaseUrl } = yield* AppConfig
      yield* createTables
      const tenantId = crypto.randomUUID()
      const orderId = crypto.randomUUID()
      yield* placeOrder(tenantId, { orderId, customerId: "alice", totalCents: 12_345 })
      yield* Effect.logInfo(`order ${orderId} placed for tenant ${tenantId}; Ctrl-C to stop`)
      return yield* Layer.launch(quickstart(databaseUrl))
    }),
    Layer.merge(Platform.layer, Outbox.layer),
  )
