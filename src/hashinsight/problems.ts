/**
 * The domain's errors as the API answers them: each one's problem document (`type`, title,
 * status), declared once here for the endpoints that fail with it. The errors themselves live with
 * their domain and know nothing of HTTP.
 */
import { problemFace } from "../http/problem.ts"
import { UnknownAccount } from "./crm/accounts.ts"
import { Conflict, NotFound } from "./errors.ts"
import { UnknownModel } from "./miners/miners.ts"

export const NotFoundProblem = problemFace(NotFound, {
  slug: "not-found",
  status: 404,
  title: "Not found",
  description: "No such resource, or no such route",
})

export const ConflictProblem = problemFace(Conflict, {
  slug: "conflict",
  status: 409,
  title: "Conflicts with the resource's current state",
  description: "The change does not apply to the resource in its current state",
})

export const UnknownModelProblem = problemFace(UnknownModel, {
  slug: "unknown-model",
  status: 422,
  title: "Unknown miner model",
  description: "`modelId` is not in the miner model catalogue",
})

export const UnknownCrmAccountProblem = problemFace(UnknownAccount, {
  name: "UnknownCrmAccount",
  slug: "unknown-account",
  status: 422,
  title: "Unknown CRM account",
  description: "`accountId` names no CRM account of this tenant",
})
