/** The platform's layers with their configuration read from the environment (`AppConfig.layer`). */
import { Layer } from "effect"
import { AppConfig } from "./config.ts"
import { Db } from "./db.ts"
import { Kafka } from "./kafka.ts"
import { Redis } from "./redis.ts"

const withConfig = <A, E, R>(layer: Layer.Layer<A, E, R>) => layer.pipe(Layer.provideMerge(AppConfig.layer))

export const Platform = {
  /** Database, Redis and Kafka. */
  layer: withConfig(Layer.mergeAll(Db.layerConfig, Redis.layerConfig, Kafka.layerConfig)),
  layerDb: withConfig(Db.layerConfig),
  layerKafka: withConfig(Kafka.layerConfig),
}
