/**
 * The signed-in person: `GET /session` on load (the cookie survives a reload,
 * the CSRF token comes back with it), sign in with an API key, sign out.
 */
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useEffect } from "react";
import { fetchSession, setUnauthenticatedHandler, signIn, signOut } from "./api";
import type { SessionInfo } from "./types";

const SESSION_KEY = ["session"] as const;

/** The session query: data is null when signed out. */
export function useSessionQuery() {
  return useQuery({ queryKey: SESSION_KEY, queryFn: fetchSession, staleTime: 5 * 60_000, retry: 1 });
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

export function useSignOut() {
  const queryClient = useQueryClient();
  return useMutation({
    mutationFn: signOut,
    onSettled: () => {
      queryClient.clear();
      queryClient.setQueryData(SESSION_KEY, null);
    },
  });
}
