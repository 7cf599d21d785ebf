/**
 * `GET /v1/stream`: the dashboard's live feed over a WebSocket. Authenticated
 * like any `/v1` route (bearer key or session cookie) before the upgrade.
 *
 * One poller per API process reads new audit events and analyses every
 * `intervalMs` while at least one socket is open, and sends each to the
 * sockets of its workspace. Messages are JSON: `{ type: "hello", at }` first,
 * then `{ type: "audit", event }` and `{ type: "analysis", experimentId, ts,
 * effect, ciLow, ciHigh, pValue, decision }`.
 */
import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import {
  type RuntimeDeps,
  readStreamEvents,
  type StreamCursor,
  type StreamEvent,
  startStreamCursor,
} from "@outcome-runtime/runtime";
import type { FastifyBaseLogger } from "fastify";
import type { WebSocket } from "ws";
import { problem, sendProblem } from "../../../plugins/problem-details";
import type { RouteOptions } from "../../route-options";

/** Keeps proxies from closing an idle connection, and finds dead peers. */
const PING_INTERVAL_MS = 25_000;

/** The open sockets by workspace, and the one poller that feeds them. */
class StreamHub {
  private readonly sockets = new Map<string, Set<WebSocket>>();
  /** Sockets that have had their hello and take events. */
  private readonly ready = new WeakSet<WebSocket>();
  private cursor: StreamCursor | null = null;
  private starting: Promise<void> | null = null;
  private poller: NodeJS.Timeout | null = null;
  private pinger: NodeJS.Timeout | null = null;
  private polling = false;
  private closed = false;

  constructor(
    private readonly deps: RuntimeDeps,
    private readonly intervalMs: number,
    private readonly log: FastifyBaseLogger,
  ) {}

  /** Open sockets, all workspaces together. */
  get size(): number {
    let n = 0;
    for (const set of this.sockets.values()) n += set.size;
    return n;
  }

  /** Whether the poller runs (only while a socket is open). */
  get running(): boolean {
    return this.poller !== null;
  }

  /**
   * Add a socket of a workspace; starts the poller for the first one. Once the
   * stream's starting point is fixed the socket gets its `hello`, and from then
   * on every event, so whatever happens after the `hello` reaches it.
   */
  async add(workspaceId: string, socket: WebSocket): Promise<void> {
    if (this.closed) {
      socket.close(1001, "server shutting down");
      return;
    }
    let set = this.sockets.get(workspaceId);
    if (!set) {
      set = new Set();
      this.sockets.set(workspaceId, set);
    }
    set.add(socket);
    socket.on("close", () => this.remove(workspaceId, socket));
    await this.start();
    if (socket.readyState !== 1) return;
    // Synchronously with joining the broadcast: no event can come before the hello.
    socket.send(JSON.stringify({ type: "hello", at: new Date().toISOString() }));
    this.ready.add(socket);
  }

  private remove(workspaceId: string, socket: WebSocket): void {
    const set = this.sockets.get(workspaceId);
    if (!set) return;
    set.delete(socket);
    if (set.size === 0) this.sockets.delete(workspaceId);
    if (this.size === 0) this.stop();
  }

  private start(): Promise<void> {
    if (this.poller !== null) return Promise.resolve();
    this.starting ??= (async () => {
      try {
        this.cursor = await startStreamCursor(this.deps);
        if (this.closed || this.size === 0) return;
        this.poller = setInterval(() => void this.poll(), this.intervalMs);
        this.pinger = setInterval(() => this.ping(), PING_INTERVAL_MS);
      } finally {
        this.starting = null;
      }
    })();
    return this.starting;
  }

  private stop(): void {
    if (this.poller) clearInterval(this.poller);
    if (this.pinger) clearInterval(this.pinger);
    this.poller = null;
    this.pinger = null;
    this.cursor = null;
  }

  private ping(): void {
    for (const set of this.sockets.values()) for (const socket of set) if (socket.readyState === 1) socket.ping();
  }

  /** One read; a read still running when the next tick comes is not doubled. */
  private async poll(): Promise<void> {
    const cursor = this.cursor;
    if (this.polling || cursor === null) return;
    this.polling = true;
    try {
      const byWorkspace = await readStreamEvents(this.deps, cursor);
      for (const [workspaceId, events] of byWorkspace) {
        const set = this.sockets.get(workspaceId);
        if (!set) continue;
        for (const event of events) this.broadcast(set, event);
      }
    } catch (error) {
      // The database may be away for a moment; the next tick tries again from the same cursor.
      this.log.warn({ err: error }, "live stream poll failed");
    } finally {
      this.polling = false;
    }
  }

  private broadcast(set: Set<WebSocket>, event: StreamEvent): void {
    const text = JSON.stringify(event);
    for (const socket of set) if (socket.readyState === 1 && this.ready.has(socket)) socket.send(text);
  }

  /** Close every socket and stop polling (the app is closing). */
  close(): void {
    this.closed = true;
    this.stop();
    for (const set of this.sockets.values()) for (const socket of set) socket.close(1001, "server shutting down");
    this.sockets.clear();
  }
}

const streamRoutes: FastifyPluginAsyncTypebox<RouteOptions & { streamIntervalMs: number }> = async (
  app,
  { deps, streamIntervalMs },
) => {
  const hub = new StreamHub(deps, streamIntervalMs, app.log);
  app.addHook("preClose", async () => hub.close());

  app.get(
    "/v1/stream",
    {
      config: { operations: ["audit.read"] },
      websocket: true,
      schema: {
        tags: ["stream"],
        summary: "Live feed of audit events and analyses (WebSocket)",
      },
      // A session cookie rides along with any page's handshake: only our own pages may use it
      // (cross-site WebSocket hijacking). Bearer clients are not browsers' ambient credentials.
      preValidation: async (request, reply) => {
        const origin = request.headers.origin;
        if (request.caller.channel !== "web" || origin === undefined) return;
        let same = false;
        try {
          const from = new URL(origin);
          // The Host header in the origin's scheme, so default ports compare equal (`:80` ≡ none).
          same = new URL(`${from.protocol}//${request.headers.host ?? ""}`).host === from.host;
        } catch {
          same = false;
        }
        if (!same) {
          return sendProblem(reply, problem(request, "forbidden", `origin ${origin} may not open the stream`));
        }
      },
    },
    (socket, request) => hub.add(request.caller.principal.workspaceId, socket),
  );
};

export default streamRoutes;
