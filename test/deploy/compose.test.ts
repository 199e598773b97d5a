import { describe, expect, test } from "bun:test"
import { existsSync, readFileSync } from "node:fs"
import { join } from "node:path"
import { parse } from "yaml"
import { projectRoot } from "../../src/platform/project-root.ts"

// No Docker engine runs here, so this checks that docker-compose.yml agrees with the code and DESIGN.md.
type Service = {
  command?: ReadonlyArray<string>
  environment?: Record<string, string>
  ports?: ReadonlyArray<string>
  profiles?: ReadonlyArray<string>
  build?: string
  image?: string
}
const compose = parse(readFileSync(join(projectRoot, "docker-compose.yml"), "utf8"), { merge: true }) as {
  services: Record<string, Service>
}
const services = compose.services
const platformServices = ["api", "relay", "portfolio-consumer", "intel-consumer", "crm-sync-consumer"]
const contractEnv = [
  "DATABASE_URL",
  "REDIS_URL",
  "KAFKA_BROKERS",
  "PORT",
  "LOG_LEVEL",
  "HOST",
  "METRICS_PORT",
]
/** Our own settings beyond the contract that the compose file sets (documented in the README). */
const ownEnv = ["KAFKA_FETCH_MAX_WAIT_MS"]
const configSource = readFileSync(join(projectRoot, "src/platform/config.ts"), "utf8")

describe("docker-compose.yml", () => {
  test("has the infrastructure, the Debezium connector and every platform process", () => {
    for (const name of [
      "postgres",
      "redis",
      "kafka",
      "connect",
      "register-connector",
      "migrate",
      ...platformServices,
    ]) {
      expect(Object.keys(services)).toContain(name)
    }
    expect(services.postgres?.command?.join(" ")).toContain("wal_level=logical")
  })

  test("platform processes are built from the one Dockerfile and run entry points that exist", () => {
    expect(existsSync(join(projectRoot, "Dockerfile"))).toBe(true)
    for (const name of [...platformServices, "migrate"]) {
      const s = services[name]!
      expect({ name, build: s.build }).toEqual({ name, build: "." })
      const [bin, entry] = s.command ?? []
      expect(bin).toBe("bun")
      expect(existsSync(join(projectRoot, entry!))).toBe(true)
    }
  })

  test("consumers run the contract's consumer names and are scalable (no fixed name or host port)", () => {
    expect(services["portfolio-consumer"]?.command?.slice(-1)).toEqual(["portfolio"])
    expect(services["intel-consumer"]?.command?.slice(-1)).toEqual(["intel"])
    expect(services["crm-sync-consumer"]?.command?.slice(-1)).toEqual(["crm-sync"])
    for (const name of ["portfolio-consumer", "intel-consumer", "crm-sync-consumer", "relay"]) {
      expect(services[name]?.ports).toBeUndefined()
    }
  })

  test("env var names are the contract's (or our documented own) and the ones the config reads", () => {
    const readme = readFileSync(join(projectRoot, "README.md"), "utf8")
    for (const key of ownEnv) expect(readme).toContain(`| \`${key}\` |`)
    for (const name of [...platformServices, "migrate"]) {
      for (const key of Object.keys(services[name]?.environment ?? {})) {
        expect([...contractEnv, ...ownEnv]).toContain(key)
        expect(configSource).toContain(`"${key}"`)
      }
    }
    const api = services.api!
    expect(api.environment?.PORT).toBe("5000")
    expect(api.ports).toContain(`5000:${api.environment?.PORT}`)
    expect(configSource).toContain('Config.port("PORT").pipe(Config.withDefault(5000))')
  })

  test("servers bind every address in the image and in compose (HOST), so published ports reach the API", () => {
    expect(readFileSync(join(projectRoot, "Dockerfile"), "utf8")).toMatch(/^ENV .*\bHOST=0\.0\.0\.0\b/m)
    for (const name of platformServices)
      expect({ name, host: services[name]?.environment?.HOST }).toEqual({ name, host: "0.0.0.0" })
    expect(configSource).toContain('Config.nonEmptyString("HOST").pipe(Config.withDefault("127.0.0.1"))')
  })

  test("connection URLs point at the compose services", () => {
    const env = services.relay?.environment ?? {}
    expect(new URL(env.DATABASE_URL!).hostname).toBe("postgres")
    expect(new URL(env.REDIS_URL!).hostname).toBe("redis")
    expect(env.KAFKA_BROKERS?.split(",").map((b) => b.split(":")[0])).toEqual(["kafka"])
  })

  test("the connector it registers is the repository's Debezium outbox connector", () => {
    const register = services["register-connector"]?.command?.join(" ") ?? ""
    expect(register).toContain("@/connectors/outbox-connector.json")
    expect(existsSync(join(projectRoot, "connectors/outbox-connector.json"))).toBe(true)
  })
})
