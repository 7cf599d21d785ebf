// pnpm's hooks (https://pnpm.io/pnpmfile). better-auth declares optional peer dependencies for every framework
// and tool it can sit in (React, Next, Svelte, Prisma, Drizzle, MongoDB, vitest…); pnpm resolves those it finds
// in the workspace from the root's dev tools, and `vitest` would then ship in the production image. The runtime
// uses better-auth with its Kysely adapter on `pg` only: the peers it does not use are dropped.
const BETTER_AUTH_PEERS_USED = new Set(["pg", "mysql2", "@opentelemetry/api"]);

function readPackage(pkg) {
  if (pkg.name === "better-auth" && pkg.peerDependencies) {
    for (const name of Object.keys(pkg.peerDependencies)) {
      if (!BETTER_AUTH_PEERS_USED.has(name)) {
        delete pkg.peerDependencies[name];
        if (pkg.peerDependenciesMeta) delete pkg.peerDependenciesMeta[name];
      }
    }
  }
  return pkg;
}

module.exports = { hooks: { readPackage } };
