/** The stack's Redis: no persistence, daemonized, its pid and port in `.stack/redis`. */
import { mkdirSync, readFileSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { pickPort } from "./ports.ts"
import { run, runningFrom, StackError, type StackMember, sleep, stackDir, stopPid } from "./processes.ts"

const redisDir = () => join(stackDir(), "redis")
const redisPidFile = () => join(redisDir(), "redis.pid")
const redisPortFile = () => join(redisDir(), "port")

const redisRunning = () => runningFrom(redisPidFile())

const startRedis = async (): Promise<void> => {
  mkdirSync(redisDir(), { recursive: true })
  const port = await pickPort("redis")
  const r = run("redis-server", [
    "--port",
    String(port),
    "--bind",
    "127.0.0.1",
    "--save",
    "",
    "--appendonly",
    "no",
    "--daemonize",
    "yes",
    "--dir",
    redisDir(),
    "--pidfile",
    redisPidFile(),
    "--logfile",
    join(redisDir(), "redis.log"),
  ])
  if (!r.ok) throw new StackError(`redis-server did not start:\n${r.out}`)
  writeFileSync(redisPortFile(), String(port))
  for (let i = 0; i < 100 && !redisRunning(); i++) await sleep(20)
  if (!redisRunning())
    throw new StackError(`redis-server did not start (see ${join(redisDir(), "redis.log")})`)
}

export const redis: StackMember = {
  running: redisRunning,
  start: startRedis,
  stop: () => stopPid(redisRunning()),
  env: () => `redis://127.0.0.1:${readFileSync(redisPortFile(), "utf8").trim()}`,
}
