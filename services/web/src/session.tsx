/**
 * The signed-in person: `GET /session` on load (the cookie survives a reload,
 * the CSRF token comes back with it), sign in with an API key, sign out (here
 * or everywhere), and, for a member, their workspaces: create the first one,
 * switch between them.
 */
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useEffect } from "react";
import { useNavigate } from "react-router";
import {
  createWorkspace,
  fetchAuthConfig,
  fetchSession,
  setUnauthenticatedHandler,
  signIn,
  signOut,
  signOutEverywhere,
  switchWorkspace,
} from "./api";
import type { SessionInfo } from "./types";

const SESSION_KEY = ["session"] as const;

/** The session query: data is null when signed out. */
export function useSessionQuery() {
  return useQuery({ queryKey: SESSION_KEY, queryFn: fetchSession, staleTime: 5 * 60_000, retry: 1 });
}

/** The ways to sign in the server offers (email link, single sign-on); they change only with its configuration. */
export function useAuthConfig() {
  return useQuery({ queryKey: ["auth-config"], queryFn: fetchAuthConfig, staleTime: Number.POSITIVE_INFINITY });
}

/** Any request answering 401 ends the session in the UI (the layout then shows sign-in). */
export function useUnauthenticatedRedirect(): void {
  const queryClient = useQueryClient();
  useEffect(() => {
    setUnauthenticatedHandler(() => queryClient.setQueryData(SESSION_KEY, null));
    return () => setUnauthenticatedHandler(null);
  }, [queryClient]);
}

export function useSignIn() {
  const queryClient = useQueryClient();
  return useMutation({
    mutationFn: (apiKey: string) => signIn(apiKey),
    onSuccess: (session: SessionInfo) => {
      queryClient.removeQueries({ predicate: (q) => q.queryKey[0] !== "session" });
      queryClient.setQueryData(SESSION_KEY, session);
    },
  });
}

/**
 * Signed out: the session query answers null (its observers, the layout among
 * them, see it and show sign-in), and every other answer is forgotten. The
 * session query itself stays in the cache: a new one made after `clear()`
 * would not reach the observers of the old.
 */
function useForgetSession() {
  const queryClient = useQueryClient();
  return () => {
    queryClient.setQueryData(SESSION_KEY, null);
    queryClient.removeQueries({ predicate: (q) => q.queryKey[0] !== "session" });
  };
}

export function useSignOut() {
  return useMutation({ mutationFn: signOut, onSettled: useForgetSession() });
}

/** Sign out on every device; this browser is signed out whatever the answer. */
export function useSignOutEverywhere() {
  return useMutation({ mutationFn: signOutEverywhere, onSettled: useForgetSession() });
}

/**
 * Forget every answer of the workspace the session was in, open the outcomes
 * and read the session again: its new workspace remounts the pages (see the
 * layout), so nothing of the old workspace stays on screen.
 */
function useEnterWorkspace() {
  const queryClient = useQueryClient();
  const navigate = useNavigate();
  return async () => {
    queryClient.removeQueries({ predicate: (q) => q.queryKey[0] !== "session" });
    navigate("/");
    await queryClient.refetchQueries({ queryKey: SESSION_KEY });
  };
}

/** Move the session to another of the member's workspaces. */
export function useSwitchWorkspace() {
  const enter = useEnterWorkspace();
  return useMutation({ mutationFn: switchWorkspace, onSuccess: enter });
}

/** Create a workspace (installation admins); the session moves into it. */
export function useCreateWorkspace() {
  const enter = useEnterWorkspace();
  return useMutation({ mutationFn: createWorkspace, onSuccess: enter });
}
