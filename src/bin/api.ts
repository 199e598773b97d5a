/** `bun run api` — the HTTP API alone on PORT (default 5000); Ctrl-C drains and exits. */
import { Layer } from "effect"
import { Outbox } from "../engine/outbox.ts"
import { HashInsightApi } from "../hashinsight/api.ts"
import { HashInsightRoutes } from "../hashinsight/routes.ts"
import { ApiServer } from "../http/server.ts"
import { Platform } from "../platform/layers.ts"
import { runMain } from "./main.ts"

runMain(
  Layer.launch(ApiServer.layerConfig({ api: HashInsightApi, routes: HashInsightRoutes })),
  Layer.mergeAll(Platform.layer, Outbox.layer),
)
