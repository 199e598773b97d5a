/** `bun run api` — the HTTP API alone on PORT (default 5000); Ctrl-C drains and exits. */
import { Layer } from "effect"
import { Outbox } from "../engine/outbox.ts"
import { ApiLive } from "../http/server.ts"
import { DbLayer, RedisLayer } from "../platform/layers.ts"
import { runMain } from "./main.ts"

runMain(Layer.launch(ApiLive), Layer.mergeAll(DbLayer, RedisLayer, Outbox.layer))
