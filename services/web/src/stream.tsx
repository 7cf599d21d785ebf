/**
 * Live updates: one WebSocket to `/v1/stream` (cookie auth). Each message
 * invalidates the react-query caches it concerns, so new analyses, pauses and
 * gate changes appear without a reload. Reconnects with exponential backoff
 * and jitter; after a reconnect everything is refetched (events may have been missed).
 */
import { type QueryClient, useQueryClient } from "@tanstack/react-query";
import { createContext, type ReactNode, useContext, useEffect, useState } from "react";

export type ConnectionState = "connecting" | "live" | "reconnecting" | "offline";

const ConnectionContext = createContext<ConnectionState>("connecting");

function useConnectionState(): ConnectionState {
  return useContext(ConnectionContext);
}

interface StreamMessage {
  type?: string;
  experimentId?: string;
  event?: { action?: string; subjectType?: string; subjectId?: string };
}

/** Which cached queries a message makes stale (prefixes of query keys). */
function keysFor(message: StreamMessage): string[] {
  if (message.type === "analysis") return ["experiment", "outcome", "outcomes", "gates", "gate"];
  if (message.type !== "audit") return [];
  const subject = message.event?.subjectType ?? "";
  const action = message.event?.action ?? "";
  const keys = new Set<string>(["audit"]);
  if (subject === "gate") for (const k of ["gates", "gate", "outcomes", "outcome", "experiment"]) keys.add(k);
  if (subject === "experiment") for (const k of ["experiment", "outcome", "outcomes", "gates", "gate"]) keys.add(k);
  if (subject === "outcome") for (const k of ["outcomes", "outcome"]) keys.add(k);
  if (subject === "learning" || action.startsWith("learning")) keys.add("learnings");
  if (action.includes("decided") || action.includes("concluded")) keys.add("learnings");
  if (action.startsWith("llm")) keys.add("usage");
  if (!["gate", "experiment", "outcome"].includes(subject)) {
    // Unknown subjects: refresh what is on screen rather than miss a change.
    for (const k of ["outcomes", "outcome", "experiment", "gates", "gate"]) keys.add(k);
  }
  return [...keys];
}

function streamUrl(): string {
  const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${window.location.host}/v1/stream`;
}

/** Batches invalidations so a burst of events refetches each query once. */
function batcher(queryClient: QueryClient) {
  const pending = new Set<string>();
  let timer: ReturnType<typeof setTimeout> | null = null;
  return {
    add(keys: string[]) {
      for (const k of keys) pending.add(k);
      if (timer !== null) return;
      timer = setTimeout(() => {
        timer = null;
        const list = [...pending];
        pending.clear();
        for (const k of list) void queryClient.invalidateQueries({ queryKey: [k] });
      }, 250);
    },
    cancel() {
      if (timer !== null) clearTimeout(timer);
    },
  };
}

export function LiveStreamProvider({ children }: { children: ReactNode }) {
  const queryClient = useQueryClient();
  const [state, setState] = useState<ConnectionState>("connecting");

  useEffect(() => {
    let socket: WebSocket | null = null;
    let retry: ReturnType<typeof setTimeout> | null = null;
    let attempt = 0;
    let everOpened = false;
    let closed = false;
    const batch = batcher(queryClient);

    const connect = () => {
      if (closed) return;
      setState(everOpened || attempt > 0 ? "reconnecting" : "connecting");
      try {
        socket = new WebSocket(streamUrl());
      } catch {
        schedule();
        return;
      }
      socket.onopen = () => {
        // "Live" waits for the hello: events reach the socket only from then on.
      };
      socket.onmessage = (event) => {
        let message: StreamMessage;
        try {
          message = JSON.parse(String(event.data)) as StreamMessage;
        } catch {
          return;
        }
        if (message.type === "hello") {
          const wasReconnect = everOpened;
          everOpened = true;
          attempt = 0;
          setState("live");
          // Events may have been missed while disconnected: refetch what is on screen.
          if (wasReconnect) void queryClient.invalidateQueries({ predicate: (q) => q.queryKey[0] !== "session" });
          return;
        }
        batch.add(keysFor(message));
      };
      socket.onclose = () => {
        socket = null;
        if (!closed) schedule();
      };
      socket.onerror = () => {
        // onclose follows and schedules the retry.
      };
    };

    const schedule = () => {
      if (closed) return;
      attempt += 1;
      setState(attempt > 8 ? "offline" : "reconnecting");
      const base = Math.min(30_000, 1000 * 2 ** Math.min(attempt - 1, 5));
      const delay = base / 2 + Math.random() * (base / 2);
      retry = setTimeout(connect, delay);
    };

    const online = () => {
      if (socket === null && retry !== null) {
        clearTimeout(retry);
        retry = null;
        attempt = 0;
        connect();
      }
    };
    window.addEventListener("online", online);
    connect();
    return () => {
      closed = true;
      window.removeEventListener("online", online);
      batch.cancel();
      if (retry !== null) clearTimeout(retry);
      socket?.close();
    };
  }, [queryClient]);

  return <ConnectionContext.Provider value={state}>{children}</ConnectionContext.Provider>;
}

const LABELS: Record<ConnectionState, string> = {
  connecting: "Connecting…",
  live: "Live",
  reconnecting: "Reconnecting…",
  offline: "Offline — retrying",
};

/** The visible connection state. */
export function ConnectionPill() {
  const state = useConnectionState();
  return (
    <span
      className={`pill pill-${state}`}
      role="status"
      aria-live="polite"
      data-testid="connection-pill"
      data-state={state}
      title={state === "live" ? "Updates appear without reloading" : "Live updates are paused; retrying"}
    >
      <span className="pill-dot" aria-hidden="true" />
      {LABELS[state]}
    </span>
  );
}
