/**
 * Kafka through kafkajs, the one door to it: a client for the process plus scoped factories for
 * producers, consumers and admins, all disconnected on scope exit, and the kafkajs types the rest of
 * the code speaks in, under our names. Settings follow STACK.md: kafkajs's Java-compatible default
 * partitioner (keys land where Debezium's and Java's producers put them: murmur2 of the key), no
 * idempotent producer (the mock cluster lacks it), short fetch waits by default (the mock does not
 * wake long polls; KAFKA_FETCH_MAX_WAIT_MS), and kafkajs's idle request-queue timer patched out
 * (kafkajs-request-queue.ts), checked when the service is made.
 */
import { Context, Data, Duration, Effect, Layer, type Scope } from "effect"
import {
  type Admin,
  type Consumer,
  type ConsumerConfig,
  type IHeaders,
  type KafkaConfig,
  Kafka as KafkaJs,
  logLevel,
  type Message,
  Partitioners,
  type Producer,
  type ProducerConfig,
  type TopicMessages,
} from "kafkajs"
import { AppConfig, defaultFetchMaxWaitMs } from "./config.ts"
import { patchRequestQueue } from "./kafkajs-request-queue.ts"

export type KafkaProducer = Producer
export type KafkaConsumer = Consumer
export type KafkaAdmin = Admin
/** A record to produce: key, value, headers (and a partition, when one is forced). */
export type KafkaMessage = Message
/** Records for one topic, as a batch send takes them. */
export type KafkaTopicMessages = TopicMessages
/** A record's headers, as produced and as fetched. */
export type KafkaHeaders = IHeaders

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

/**
 * A release's disconnect, given up after 10 s: a consumer's waits for its running batch and then
 * leaves its group, and against brokers that hang each request waits out kafkajs's request timeout.
 * A release runs uninterruptibly, so without `interruptible` the timeout could not cut it short.
 */
const disconnect = (op: string, f: () => Promise<void>) =>
  attempt(op, f).pipe(Effect.interruptible, Effect.timeout(Duration.seconds(10)), Effect.ignore)

export class Kafka extends Context.Tag("hashinsight/platform/Kafka")<
  Kafka,
  {
    readonly producer: (config?: ProducerConfig) => Effect.Effect<Producer, KafkaError, Scope.Scope>
    readonly consumer: (config: ConsumerConfig) => Effect.Effect<Consumer, KafkaError, Scope.Scope>
    readonly admin: Effect.Effect<Admin, KafkaError, Scope.Scope>
    /**
     * An admin that fails fast (one try, 1 s to connect, 2.5 s a request) rather than sitting in
     * kafkajs's retries: for a health check, which must answer while Kafka is down.
     */
    readonly quickAdmin: Effect.Effect<Admin, KafkaError, Scope.Scope>
    /** Cheap liveness probe: a metadata round trip, failing within 3 s. */
    readonly probe: Effect.Effect<void, KafkaError>
  }
>() {
  static readonly make = (
    brokers: ReadonlyArray<string>,
    clientId = "hashinsight",
    fetchMaxWaitMs = defaultFetchMaxWaitMs,
  ) =>
    Effect.gen(function* () {
      if (!patchRequestQueue())
        return yield* Effect.dieMessage(
          "kafkajs's request queue no longer looks as kafkajs-request-queue.ts expects: its idle-timer patch did not take",
        )
      const settings: KafkaConfig = {
        clientId,
        brokers: [...brokers],
        logLevel: logLevel.NOTHING,
        connectionTimeout: 3000,
        requestTimeout: 10000,
        retry: { initialRetryTime: 100, retries: 8, maxRetryTime: 5000 },
      }
      const client = new KafkaJs(settings)
      const quick = new KafkaJs({
        ...settings,
        clientId: `${clientId}-health`,
        connectionTimeout: 1000,
        requestTimeout: 2500,
        retry: { retries: 0 },
      })
      const producer = (config?: ProducerConfig) =>
        Effect.acquireRelease(
          Effect.gen(function* () {
            const p = client.producer({
              createPartitioner: Partitioners.DefaultPartitioner,
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
      const adminOf = (of: KafkaJs) =>
        Effect.acquireRelease(
          Effect.gen(function* () {
            const a = of.admin()
            yield* attempt("admin.connect", () => a.connect())
            return a
          }),
          (a) => disconnect("admin.disconnect", () => a.disconnect()),
        )
      // Connected on the first probe (connecting again is a no-op while connected), so a process
      // that only probes, or never does, starts while Kafka is down.
      const probeAdmin = client.admin()
      yield* Effect.addFinalizer(() => disconnect("admin.disconnect", () => probeAdmin.disconnect()))
      const probe = attempt("describeCluster", async () => {
        await probeAdmin.connect()
        await probeAdmin.describeCluster()
      }).pipe(
        Effect.timeoutFail({
          duration: Duration.seconds(3),
          onTimeout: () => new KafkaError({ op: "describeCluster", cause: "timeout" }),
        }),
      )
      return Kafka.of({ producer, consumer, admin: adminOf(client), quickAdmin: adminOf(quick), probe })
    })

  static readonly layerConfig = Layer.scoped(
    Kafka,
    Effect.flatMap(AppConfig, (c) => Kafka.make(c.kafkaBrokers, c.kafkaClientId, c.kafkaFetchMaxWaitMs)),
  )
}
