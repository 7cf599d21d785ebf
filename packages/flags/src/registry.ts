/**
 * The flag providers the runtime knows, by `flags.provider`.
 */
import type { FlagProviderModule } from "./provider-module";

const MODULES: readonly FlagProviderModule[] = [];

/** Every provider type, in the order docs list them. */
export const FLAG_PROVIDER_TYPES: readonly string[] = MODULES.map((m) => m.type);

/** The provider module of a type, or null for a type no module registers. */
export function flagProviderModule(type: string): FlagProviderModule | null {
  return MODULES.find((m) => m.type === type) ?? null;
}
