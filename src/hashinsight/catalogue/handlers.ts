/** The catalogue is global and changes only with a migration: one cached list serves every read. */
import { HttpApiBuilder } from "@effect/platform"
import { Effect } from "effect"
import { HashInsightApi } from "../api.ts"
import { cachePolicies, catalogueKey } from "../cache-keys.ts"
import { listMinerModels } from "../catalogue.ts"
import { NotFound } from "../errors.ts"
import { cachedRead, databaseDown } from "../route-kit.ts"
import { MinerModelList } from "./api.ts"

const catalogue = cachedRead(
  catalogueKey,
  cachePolicies.catalogue,
  MinerModelList,
  listMinerModels.pipe(Effect.catchTags({ SqlError: databaseDown, ParseError: Effect.die })),
)

export const CatalogueRoutes = HttpApiBuilder.group(HashInsightApi, "catalogue", (handlers) =>
  handlers
    .handle("listMinerModels", () => catalogue)
    .handle("getMinerModel", ({ path }) =>
      Effect.flatMap(catalogue, (models) => {
        const model = models.find((m) => m.id === path.id)
        return model
          ? Effect.succeed(model)
          : Effect.fail(new NotFound({ message: `no miner model ${path.id}` }))
      }),
    ),
)
