/** The platform layers composed once: config, database, Redis, Kafka. */
import { Layer } from "effect"
import { AppConfig } from "./config.ts"
import { DbLive } from "./db.ts"
import { Kafka } from "./kafka.ts"
import { Redis } from "./redis.ts"

export const DbLayer = DbLive.pipe(Layer.provideMerge(AppConfig.layer))
export const RedisLayer = Redis.layer.pipe(Layer.provideMerge(AppConfig.layer))
export const KafkaLayer = Kafka.layer.pipe(Layer.provideMerge(AppConfig.layer))

export const PlatformLive = Layer.mergeAll(DbLive, Redis.layer, Kafka.layer).pipe(
  Layer.provideMerge(AppConfig.layer),
)
