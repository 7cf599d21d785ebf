import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

/** The API the dev server forwards to (`pnpm --filter @outcome-runtime/web dev`); OUTCOME_RUNTIME_API_URL overrides it. */
const env = (globalThis as { process?: { env: Record<string, string | undefined> } }).process?.env ?? {};
const api = env.OUTCOME_RUNTIME_API_URL ?? "http://127.0.0.1:8080";
const proxy = {
  "/v1/stream": { target: api, ws: true, changeOrigin: true },
  "/v1": { target: api, changeOrigin: true },
  "/session": { target: api, changeOrigin: true },
  // Sign-in by email link and single sign-on (their pages and better-auth's callback), and workspaces.
  "/auth": { target: api, changeOrigin: true },
  "/api/auth": { target: api, changeOrigin: true },
  "/workspaces": { target: api, changeOrigin: true },
};

export default defineConfig({
  plugins: [react()],
  build: {
    outDir: "dist",
    assetsDir: "assets",
    emptyOutDir: true,
    sourcemap: false,
  },
  server: {
    port: 5173,
    proxy,
  },
  preview: { port: 4173, proxy },
});
