/** What a registered consumer's handlers may use: the platform services and the runtime's locks. */
import type { SqlClient } from "@effect/sql"
import type { Locks } from "../../engine/consumer/lock.ts"
import type { Kafka } from "../../platform/kafka.ts"
import type { Redis } from "../../platform/redis.ts"

export type PlatformServices = SqlClient.SqlClient | Redis | Kafka | Locks
