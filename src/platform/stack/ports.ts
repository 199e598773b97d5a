/** Ports for the stack's members: free ones, kept across restarts. */
import { existsSync, readFileSync, writeFileSync } from "node:fs"
import { createServer } from "node:net"
import { join } from "node:path"
import { type Member, stackDir } from "./processes.ts"

export const freePort = (): Promise<number> =>
  new Promise((ok, fail) => {
    const srv = createServer()
    srv.once("error", fail)
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address()
      const port = typeof addr === "object" && addr ? addr.port : 0
      srv.close(() => ok(port))
    })
  })

const portIsFree = (port: number): Promise<boolean> =>
  new Promise((ok) => {
    const srv = createServer()
    srv.once("error", () => ok(false))
    srv.listen(port, "127.0.0.1", () => srv.close(() => ok(true)))
  })

/** Ports survive restarts so a running client's env stays valid after a member is revived. */
const portsFile = () => join(stackDir(), "ports.json")
const loadPorts = (): Partial<Record<Member, number>> =>
  existsSync(portsFile()) ? JSON.parse(readFileSync(portsFile(), "utf8")) : {}

/** The member's port of last time when it is still free, else a new one, remembered. */
export const pickPort = async (member: Member): Promise<number> => {
  const ports = loadPorts()
  const known = ports[member]
  if (known && (await portIsFree(known))) return known
  const port = await freePort()
  writeFileSync(portsFile(), JSON.stringify({ ...loadPorts(), [member]: port }))
  return port
}
