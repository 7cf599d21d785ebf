import { type FormEvent, useId, useState } from "react";
import { Navigate, useSearchParams } from "react-router";
import { errorMessage } from "../api";
import { Loading, PageTitle } from "../components/ui";
import { useSessionQuery, useSignIn } from "../session";

/** Only same-site paths are followed after sign-in. */
function safeNext(next: string | null): string {
  return next?.startsWith("/") && !next.startsWith("//") ? next : "/";
}

export function SignInPage() {
  const session = useSessionQuery();
  const signIn = useSignIn();
  const [params] = useSearchParams();
  const [apiKey, setApiKey] = useState("");
  const inputId = useId();
  const errorId = useId();
  const next = safeNext(params.get("next"));

  if (session.data) return <Navigate to={next} replace />;

  const submit = (event: FormEvent) => {
    event.preventDefault();
    if (apiKey.trim()) signIn.mutate(apiKey.trim());
  };

  return (
    <main className="center-page" id="main">
      <div className="signin card">
        <p className="brand brand-static">
          <span className="brand-mark" aria-hidden="true">
            ◎
          </span>
          Outcome Runtime
        </p>
        <PageTitle title="Sign in">Sign in</PageTitle>
        {session.isPending ? <Loading label="Checking your session…" /> : null}
        <form onSubmit={submit} noValidate>
          <label htmlFor={inputId}>API key</label>
          <input
            id={inputId}
            name="apiKey"
            type="password"
            autoComplete="current-password"
            spellCheck={false}
            value={apiKey}
            onChange={(e) => setApiKey(e.target.value)}
            aria-invalid={signIn.isError}
            aria-describedby={signIn.isError ? errorId : `${inputId}-hint`}
            required
            data-testid="api-key-input"
          />
          <p id={`${inputId}-hint`} className="hint">
            Your key is sent once and kept in an HttpOnly session cookie, not in the browser's storage. Create one with{" "}
            <code>outcome-runtime keys create</code>.
          </p>
          {signIn.isError ? (
            <p id={errorId} className="form-error" role="alert">
              {errorMessage(signIn.error)}
            </p>
          ) : null}
          <button
            type="submit"
            className="button button-primary"
            disabled={signIn.isPending || !apiKey.trim()}
            data-testid="sign-in-button"
          >
            {signIn.isPending ? "Signing in…" : "Sign in"}
          </button>
        </form>
      </div>
    </main>
  );
}
