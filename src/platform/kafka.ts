/**
 * Kafka through kafkajs: a client for the process plus scoped factories for producers, consumers
 * and an admin, all disconnected on scope exit. Settings follow STACK.md: the Java-compatible
 * murmur2 partitioner (so keys land where Debezium/Java producers put them), no idempotent
 * producer (the mock cluster lacks it), short fetch waits by default (the mock does not wake long
 * polls; KAFKA_FETCH_MAX_WAIT_MS), and kafkajs's idle request-queue timer patched out
 * (kafkajs-request-queue.ts).
 */
import { Context, Data, Duration, Effect, Layer } from "effect"
import {
  type Admin,
  type Consumer,
  type ConsumerConfig,
  Kafka as KafkaJs,
  logLevel,
  type Producer,
  type ProducerConfig,
} from "kafkajs"
import { AppConfig, defaultFetchMaxWaitMs } from "./config.ts"
import { javaCompatiblePartitioner } from "./kafka-partitioner.ts"
import "./kafkajs-request-queue.ts"

export class KafkaError extends Data.TaggedError("KafkaError")<{
  readonly op: string
  readonly cause: unknown
}> {
  override get message() {
    return `kafka ${this.op}: ${this.cause instanceof Error ? this.cause.message : String(this.cause)}`
  }
  /** kafkajs marks errors worth retrying (leader moves, timeouts, broker down). */
  get retriable(): boolean {
    return (
      typeof this.cause === "object" &&
      this.cause !== null &&
      (this.cause as { retriable?: boolean }).retriable === true
    )
  }
}

const attempt = <A>(op: string, f: () => Promise<A>) =>
  Effect.tryPromise({ try: f, catch: (cause) => new KafkaError({ op, cause }) })

const disconnect = (op: string, f: () => Promise<void>) =>
  attempt(op, f).pipe(Effect.timeout(Duration.seconds(10)), Effect.ignore)

export class Kafka extends Context.Tag("hashinsight/platform/Kafka")<
  Kafka,
  {
    readonly client: KafkaJs
    readonly producer: (
      config?: ProducerConfig,
    ) => Effect.Effect<Producer, KafkaError, import("effect").Scope.Scope>
    readonly consumer: (
      config: ConsumerConfig,
    ) => Effect.Effect<Consumer, KafkaError, import("effect").Scope.Scope>
    readonly admin: Effect.Effect<Admin, KafkaError, import("effect").Scope.Scope>
    /** Cheap liveness probe for health checks: a metadata round trip. */
    readonly probe: Effect.Effect<void, KafkaError>
  }
>() {
  static readonly make = (
    brokers: ReadonlyArray<string>,
    clientId = "hashinsight",
    fetchMaxWaitMs = defaultFetchMaxWaitMs,
  ) =>
    Effect.gen(function* () {
      const client = new KafkaJs({
        clientId,
        brokers: [...brokers],
        logLevel: logLevel.NOTHING,
        connectionTimeout: 3000,
        requestTimeout: 10000,
        retry: { initialRetryTime: 100, retries: 8, maxRetryTime: 5000 },
      })
      const producer = (config?: ProducerConfig) =>
        Effect.acquireRelease(
          Effect.gen(function* () {
            const p = client.producer({
              createPartitioner: javaCompatiblePartitioner,
              allowAutoTopicCreation: true,
              idempotent: false,
              ...config,
            })
            yield* attempt("producer.connect", () => p.connect())
            return p
          }),
          (p) => disconnect("producer.disconnect", () => p.disconnect()),
        )
      const consumer = (config: ConsumerConfig) =>
        Effect.acquireRelease(
          Effect.gen(function* () {
            const c = client.consumer({
              maxWaitTimeInMs: fetchMaxWaitMs,
              allowAutoTopicCreation: true,
              ...config,
            })
            yield* attempt("consumer.connect", () => c.connect())
            return c
          }),
          (c) => disconnect("consumer.disconnect", () => c.disconnect()),
        )
      const admin = Effect.acquireRelease(
        Effect.gen(function* () {
          const a = client.admin()
          yield* attempt("admin.connect", () => a.connect())
          return a
        }),
        (a) => disconnect("admin.disconnect", () => a.disconnect()),
      )
      const probeAdmin = yield* admin
      const probe = attempt("describeCluster", () => probeAdmin.describeCluster()).pipe(
        Effect.timeoutFail({
          duration: Duration.seconds(3),
          onTimeout: () => new KafkaError({ op: "describeCluster", cause: "timeout" }),
        }),
        Effect.asVoid,
      )
      return Kafka.of({ client, producer, consumer, admin, probe })
    })

  static readonly layerConfig = Layer.scoped(
    Kafka,
    Effect.flatMap(AppConfig, (c) => Kafka.make(c.kafkaBrokers, c.kafkaClientId, c.kafkaFetchMaxWaitMs)),
  )
}
