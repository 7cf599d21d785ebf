import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: "unit",
          include: ["packages/*/src/**/*.test.ts", "services/*/src/**/*.test.ts", "scripts/**/*.test.ts"],
          exclude: ["**/*.int.test.ts", "**/node_modules/**"],
        },
      },
      {
        test: {
          name: "integration",
          include: ["packages/*/src/**/*.int.test.ts", "services/*/src/**/*.int.test.ts", "tests/**/*.test.ts"],
          exclude: ["**/node_modules/**", "tests/api-fuzz.test.ts"],
          globalSetup: ["packages/testing/src/global-setup.ts"],
          testTimeout: 60_000,
          hookTimeout: 60_000,
        },
      },
      {
        // The API fuzz runs on its own (`pnpm test:fuzz`): in two full runs of every project at once, its
        // worker died in V8's RegExp compiler (out of memory); alone and with the integration project it passes.
        test: {
          name: "fuzz",
          include: ["tests/api-fuzz.test.ts"],
          globalSetup: ["packages/testing/src/global-setup.ts"],
          testTimeout: 120_000,
          hookTimeout: 60_000,
        },
      },
      {
        // The fault-injection suite (`pnpm chaos`, tests/chaos/run.ts): one scenario file at a time, since each
        // kills and restarts processes and times recoveries.
        test: {
          name: "chaos",
          include: ["tests/chaos/**/*.chaos.ts"],
          globalSetup: ["packages/testing/src/global-setup.ts"],
          fileParallelism: false,
          testTimeout: 1_800_000,
          hookTimeout: 120_000,
        },
      },
    ],
  },
});
