/** The project's root folder (migrations/, the entry points), for runtime code and the dev stack alike. */
import { resolve } from "node:path"

export const projectRoot = resolve(import.meta.dir, "../..")
