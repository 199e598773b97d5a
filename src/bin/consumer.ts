/** `bun run consumer <portfolio|intel|crm-sync>`: one member of that consumer group. */
import { Layer } from "effect"
import { memberLayer } from "../engine/consumer/runtime.ts"
import { type ConsumerName, consumerNames, consumers } from "../hashinsight/consumers/index.ts"
import { MetricsServer } from "../observe/metrics-server.ts"
import { Platform } from "../platform/layers.ts"
import { runMain } from "./main.ts"

const usage = `usage: bun run consumer <${consumerNames.join("|")}>

Runs one member of the consumer group; start several to scale. Ctrl-C / SIGTERM drains and exits.
With METRICS_PORT set, serves its metrics at http://HOST:METRICS_PORT/metrics (Prometheus text; HOST
defaults to 127.0.0.1).`

const name = process.argv[2]
if (name === "--help" || name === "-h") {
  console.log(usage)
  process.exit(0)
}
if (!consumerNames.includes(name as ConsumerName)) {
  console.error(name ? `unknown consumer: ${name}\n\n${usage}` : usage)
  process.exit(2)
}
const definition = consumers[name as ConsumerName]
if (!definition) {
  console.error(`consumer ${name} has no handlers registered yet (src/hashinsight/consumers/index.ts)`)
  process.exit(2)
}

runMain(Layer.launch(Layer.merge(memberLayer(definition), MetricsServer.layerConfig)), Platform.layer)
