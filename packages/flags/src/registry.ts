/**
 * The flag providers the runtime knows, by `flags.provider`.
 */
import { growthbookProvider } from "./growthbook/growthbook.provider";
import { launchdarklyProvider } from "./launchdarkly/launchdarkly.provider";
import type { FlagProviderModule } from "./provider-module";
import { unleashProvider } from "./unleash/unleash.provider";

const MODULES: readonly FlagProviderModule[] = [unleashProvider, launchdarklyProvider, growthbookProvider];

/** Every provider type, in the order docs list them. */
export const FLAG_PROVIDER_TYPES: readonly string[] = MODULES.map((m) => m.type);

/** The provider module of a type, or null for a type no module registers. */
export function flagProviderModule(type: string): FlagProviderModule | null {
  return MODULES.find((m) => m.type === type) ?? null;
}
