/**
 * The child process `startUnleash` (./unleash.ts) runs: a real Unleash
 * server (`unleash-server`, its `start()` from dist/lib/server-impl.js) on a
 * database the parent created, with the API tokens the parent chose
 * (`authentication.initApiTokens`). Its configuration comes as JSON in
 * `UNLEASH_TEST_CONFIG`; once it listens it writes one line
 * `UNLEASH_LISTENING <port>` to stdout.
 *
 * It stops (Unleash's own graceful shutdown: server, schedulers, pool) on
 * SIGTERM/SIGINT, and also when its stdin closes, so a test process that dies
 * without stopping it does not leave it running.
 */
import { start } from "unleash-server";

const config = JSON.parse(process.env.UNLEASH_TEST_CONFIG ?? "{}");

const unleash = await start({
  db: {
    host: config.db.host,
    port: config.db.port,
    user: config.db.user,
    password: config.db.password,
    database: config.db.database,
    ssl: false,
    applicationName: "unleash-test",
  },
  server: { host: "127.0.0.1", port: 0, gracefulShutdownEnable: true, gracefulShutdownTimeout: 200 },
  versionCheck: { enable: false },
  telemetry: false,
  authentication: {
    createAdminUser: false,
    initApiTokens: [
      { environment: "*", projects: ["*"], secret: config.adminToken, type: "admin", tokenName: "test-admin" },
      {
        environment: config.environment,
        projects: ["*"],
        secret: config.clientToken,
        type: "backend",
        tokenName: "test-backend",
      },
    ],
  },
});

process.stdout.write(`UNLEASH_LISTENING ${unleash.server.address().port}\n`);

let stopping = false;
process.stdin.on("end", () => {
  if (stopping) return;
  stopping = true;
  unleash.stop().finally(() => process.exit(0));
});
process.stdin.resume();
