/**
 * Sign in: by an email link and by single sign-on when the server offers them
 * (`GET /auth/config`), and always with an API key. The email link and single
 * sign-on finish on server pages, which start the session and come back here.
 */
import { useMutation } from "@tanstack/react-query";
import { type FormEvent, useId, useState } from "react";
import { Navigate, useSearchParams } from "react-router";
import { errorMessage, requestEmailLink } from "../api";
import { Loading, PageTitle } from "../components/ui";
import { useAuthConfig, useSessionQuery, useSignIn } from "../session";

/** Only same-site paths are followed after sign-in. */
function safeNext(next: string | null): string {
  return next?.startsWith("/") && !next.startsWith("//") ? next : "/";
}

function EmailLinkForm() {
  const ask = useMutation({ mutationFn: requestEmailLink });
  const [email, setEmail] = useState("");
  const ids = { input: useId(), error: useId() };

  const submit = (event: FormEvent) => {
    event.preventDefault();
    if (email.trim()) ask.mutate(email.trim());
  };

  return (
    // No accessible name on the section: "Email" must name the field alone.
    <section className="signin-method">
      <h2 className="visually-hidden">Sign in by email</h2>
      <form onSubmit={submit} noValidate>
        <label htmlFor={ids.input}>Email</label>
        <input
          id={ids.input}
          name="email"
          type="email"
          autoComplete="email"
          spellCheck={false}
          value={email}
          onChange={(e) => setEmail(e.target.value)}
          aria-invalid={ask.isError}
          aria-describedby={ask.isError ? ids.error : `${ids.input}-hint`}
          required
          data-testid="email-input"
        />
        <p id={`${ids.input}-hint`} className="hint">
          We email you a link that signs you in on this device. It works once, for 15 minutes.
        </p>
        {ask.isError ? (
          <p id={ids.error} className="form-error" role="alert">
            {errorMessage(ask.error)}
          </p>
        ) : null}
        {/* Always present, so the answer is announced when it arrives. */}
        <p className="form-done" role="status" data-testid="email-link-sent">
          {ask.isSuccess ? `Check your inbox: ${ask.data.message}.` : ""}
        </p>
        <button type="submit" className="button button-primary" disabled={ask.isPending || !email.trim()}>
          {ask.isPending ? "Sending…" : "Email me a sign-in link"}
        </button>
      </form>
    </section>
  );
}

function ApiKeyForm() {
  const signIn = useSignIn();
  const [apiKey, setApiKey] = useState("");
  const inputId = useId();
  const errorId = useId();

  const submit = (event: FormEvent) => {
    event.preventDefault();
    if (apiKey.trim()) signIn.mutate(apiKey.trim());
  };

  return (
    <section className="signin-method">
      <h2 className="signin-method-title">Sign in with an API key</h2>
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
    </section>
  );
}

export function SignInPage() {
  const session = useSessionQuery();
  const config = useAuthConfig();
  const [params] = useSearchParams();
  const next = safeNext(params.get("next"));

  if (session.data) return <Navigate to={next} replace />;

  const sso = config.data?.sso ?? null;
  const emailLink = config.data?.emailLink === true;

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
        {config.isPending ? <Loading label="Loading the ways to sign in…" /> : null}
        {config.isError ? (
          <p className="hint" role="status">
            Other ways to sign in could not be loaded ({errorMessage(config.error)}). An API key works.
          </p>
        ) : null}
        {emailLink ? <EmailLinkForm /> : null}
        {sso ? (
          <section className="signin-method">
            <h2 className="visually-hidden">Single sign-on</h2>
            {/* A page navigation, not a request: the identity provider's pages take over. */}
            <a className="button signin-sso" href={sso.url} data-testid="sso-link">
              Sign in with {sso.name}
            </a>
          </section>
        ) : null}
        <ApiKeyForm />
      </div>
    </main>
  );
}
