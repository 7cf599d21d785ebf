/**
 * The frame of every signed-in page: skip link, header with navigation (gate
 * count badge, connection pill, the workspace and its switcher, who is signed
 * in), and the main landmark. Signed out, it sends the reader to /signin and
 * back afterwards; a member who belongs to no workspace yet gets the page to
 * create one (or to ask for an invitation) instead.
 */
import { useQuery } from "@tanstack/react-query";
import { type RefObject, useEffect, useId, useRef, useState } from "react";
import { isRouteErrorResponse, Navigate, NavLink, Outlet, useLocation, useRouteError } from "react-router";
import { errorMessage, request } from "./api";
import { ErrorState, Loading } from "./components/ui";
import { FirstWorkspacePage } from "./pages/first-workspace.page";
import {
  useSessionQuery,
  useSignOut,
  useSignOutEverywhere,
  useSwitchWorkspace,
  useUnauthenticatedRedirect,
} from "./session";
import { ConnectionPill, LiveStreamProvider } from "./stream";
import type { GateList, SessionInfo, Workspace } from "./types";

const INBOX_KEY = ["gates", "inbox"] as const;

/** The signed-in person's pending gates (shared by the nav badge and the inbox). */
export function useInbox() {
  return useQuery({
    queryKey: INBOX_KEY,
    queryFn: () => request<GateList>("/v1/gates?assignee=me&status=pending&limit=200"),
    refetchInterval: 60_000,
  });
}

function GatesLink() {
  const inbox = useInbox();
  const count = inbox.data?.items.length ?? 0;
  return (
    <NavLink to="/gates">
      Gates
      {count > 0 ? (
        <span className="count-badge" data-testid="gate-count">
          {count}
          <span className="visually-hidden"> pending</span>
        </span>
      ) : null}
    </NavLink>
  );
}

/** The session's workspace: its name, or a switcher when the member belongs to more than one. */
function WorkspaceSwitcher({ current, workspaces }: { current: Workspace; workspaces: Workspace[] }) {
  const switcher = useSwitchWorkspace();
  const id = useId();
  if (workspaces.length <= 1) {
    return (
      <span className="workspace-name" data-testid="workspace-name">
        <span className="visually-hidden">Workspace: </span>
        {current.name}
      </span>
    );
  }
  return (
    <div className="workspace-switcher">
      <label htmlFor={id}>Workspace</label>
      <select
        id={id}
        value={current.id}
        disabled={switcher.isPending}
        onChange={(e) => switcher.mutate(e.target.value)}
        data-testid="workspace-switcher"
      >
        {workspaces.map((w) => (
          <option key={w.id} value={w.id}>
            {w.name}
          </option>
        ))}
      </select>
      {switcher.isError ? (
        <span className="form-error small" role="alert">
          {errorMessage(switcher.error)}
        </span>
      ) : null}
    </div>
  );
}

function Header({ session }: { session: SessionInfo }) {
  const signOut = useSignOut();
  const signOutEverywhere = useSignOutEverywhere();
  // The API says which operations the session may run (the permissions table); it still checks each request.
  const admin = session.allowed.includes("key.list");
  // A member is shown by their email; a session of an API key by the key's name.
  const who = session.member?.email ?? session.principal?.name ?? "";
  const role = session.principal?.role ?? "";
  const [open, setOpen] = useState(false);
  const location = useLocation();
  // Close the phone menu after navigating.
  // biome-ignore lint/correctness/useExhaustiveDependencies: runs on every navigation on purpose
  useEffect(() => setOpen(false), [location.pathname]);
  return (
    <header className="site-header">
      <div className="header-inner">
        <NavLink to="/" className="brand" end>
          <span className="brand-mark" aria-hidden="true">
            ◎
          </span>
          Outcome Runtime
        </NavLink>
        <button
          type="button"
          className="menu-toggle"
          aria-expanded={open}
          aria-controls="primary-nav"
          onClick={() => setOpen((o) => !o)}
        >
          Menu
        </button>
        <nav id="primary-nav" aria-label="Main" className={open ? "open" : ""}>
          <ul>
            <li>
              <NavLink to="/" end>
                Outcomes
              </NavLink>
            </li>
            <li>
              <GatesLink />
            </li>
            <li>
              <NavLink to="/learnings">Learnings</NavLink>
            </li>
            <li>
              <NavLink to="/usage">Usage</NavLink>
            </li>
            <li>
              <NavLink to="/audit">Audit</NavLink>
            </li>
            <li>
              <NavLink to="/members">Members</NavLink>
            </li>
            {admin ? (
              <li>
                <NavLink to="/keys">API keys</NavLink>
              </li>
            ) : null}
          </ul>
        </nav>
        <div className="header-end">
          <ConnectionPill />
          {session.workspace ? (
            <WorkspaceSwitcher current={session.workspace} workspaces={session.workspaces ?? [session.workspace]} />
          ) : null}
          <span className="who" data-testid="signed-in-as">
            <span className="visually-hidden">Signed in as </span>
            {who}
            <span className="text-muted" data-testid="signed-in-role">
              {" "}
              · {role}
            </span>
          </span>
          <button type="button" className="button button-small" onClick={() => signOut.mutate()}>
            Sign out
          </button>
          <button
            type="button"
            className="button button-small"
            onClick={() => signOutEverywhere.mutate()}
            disabled={signOutEverywhere.isPending}
          >
            Sign out everywhere
          </button>
        </div>
      </div>
    </header>
  );
}

/** Moves focus to the page's main region after a navigation, for keyboard and screen-reader users. */
function useFocusMainOnNavigate(ref: RefObject<HTMLElement | null>) {
  const location = useLocation();
  const first = useRef(true);
  // biome-ignore lint/correctness/useExhaustiveDependencies: runs on every navigation on purpose
  useEffect(() => {
    if (first.current) {
      first.current = false;
      return;
    }
    ref.current?.focus({ preventScroll: true });
    window.scrollTo(0, 0);
  }, [location.pathname]);
}

export function Layout() {
  useUnauthenticatedRedirect();
  const session = useSessionQuery();
  const location = useLocation();
  const main = useRef<HTMLElement>(null);
  useFocusMainOnNavigate(main);

  if (session.isPending) {
    return (
      <main className="center-page">
        <Loading label="Checking your session…" />
      </main>
    );
  }
  if (session.isError) {
    return (
      <main className="center-page">
        <h1>Outcome Runtime</h1>
        <ErrorState error={session.error} onRetry={() => session.refetch()} title="The server could not be reached" />
      </main>
    );
  }
  if (session.data === null) {
    const next = `${location.pathname}${location.search}`;
    return <Navigate to={next === "/" ? "/signin" : `/signin?next=${encodeURIComponent(next)}`} replace />;
  }
  if (session.data.principal === null) return <FirstWorkspacePage session={session.data} />;
  // Keyed by the workspace: after a switch every page, query and the live stream start afresh in the new one.
  return (
    <LiveStreamProvider key={session.data.workspace?.id ?? "key"}>
      <a className="skip-link" href="#main">
        Skip to content
      </a>
      <Header session={session.data} />
      <main id="main" ref={main} tabIndex={-1} className="container">
        <Outlet />
      </main>
    </LiveStreamProvider>
  );
}

export function RouteError() {
  const error = useRouteError();
  const message = isRouteErrorResponse(error)
    ? `${error.status} ${error.statusText}`
    : error instanceof Error
      ? error.message
      : "Unknown error";
  return (
    <main className="center-page">
      <h1>Something went wrong</h1>
      <div className="state state-error" role="alert">
        <p>{message}</p>
        <a className="button" href="/">
          Back to outcomes
        </a>
      </div>
    </main>
  );
}
