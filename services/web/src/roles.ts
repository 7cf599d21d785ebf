/**
 * The roles and scopes the forms offer, as lists. Their types come from the
 * API's OpenAPI document (`types.ts`); each list is checked against its type
 * both ways, so a role the API adds or drops is a type error here, not an
 * option missing from a form.
 */
import type { ApiKeyRole, ApiKeyScope, MemberRole } from "./types";

/** `list`, when it names every member of the union `T`; one left out is a type error naming it. */
function every<T extends string>() {
  return <const L extends readonly T[]>(
    list: L & ([Exclude<T, L[number]>] extends [never] ? unknown : { missing: Exclude<T, L[number]> }),
  ): L => list;
}

/** A person's role in a workspace, most powerful first. */
export const MEMBER_ROLES = every<MemberRole>()(["admin", "approver", "member", "viewer"]);

/** An API key's role: a person's roles, and `agent`. */
export const API_KEY_ROLES = every<ApiKeyRole>()(["admin", "approver", "member", "viewer", "agent"]);

/** What a key may be used for, on top of its role. */
export const API_KEY_SCOPES = every<ApiKeyScope>()(["read", "write", "admin"]);
