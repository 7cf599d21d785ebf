/**
 * A member signed in who belongs to no workspace yet: an installation admin
 * creates the first one (and enters it); anyone else is told to ask an admin
 * for an invitation. Shown by the layout in place of every page.
 */
import { type FormEvent, useId, useState } from "react";
import { errorMessage } from "../api";
import { PageTitle } from "../components/ui";
import { useCreateWorkspace, useSignOut } from "../session";
import type { SessionInfo } from "../types";

/** A slug the API accepts, made of a name: "Growth Team" → "growth-team". */
function slugOf(name: string): string {
  return name
    .toLowerCase()
    .normalize("NFKD")
    .replace(/[^a-z0-9]+/g, "-")
    .replace(/^-+|-+$/g, "")
    .slice(0, 50)
    .replace(/-+$/, "");
}

function CreateWorkspaceForm() {
  const create = useCreateWorkspace();
  const [name, setName] = useState("");
  const [slug, setSlug] = useState("");
  const [slugEdited, setSlugEdited] = useState(false);
  const ids = { name: useId(), slug: useId(), error: useId() };

  const submit = (event: FormEvent) => {
    event.preventDefault();
    if (slug.trim() && name.trim()) create.mutate({ slug: slug.trim(), name: name.trim() });
  };

  return (
    <form onSubmit={submit} noValidate aria-describedby={create.isError ? ids.error : undefined}>
      <label htmlFor={ids.name}>Name</label>
      <input
        id={ids.name}
        name="name"
        value={name}
        maxLength={120}
        onChange={(e) => {
          setName(e.target.value);
          if (!slugEdited) setSlug(slugOf(e.target.value));
        }}
        aria-describedby={`${ids.name}-hint`}
        required
        data-testid="workspace-name-input"
      />
      <p id={`${ids.name}-hint`} className="hint">
        What the team calls it, e.g. Growth.
      </p>
      <label htmlFor={ids.slug}>Slug</label>
      <input
        id={ids.slug}
        name="slug"
        value={slug}
        maxLength={50}
        spellCheck={false}
        autoCapitalize="off"
        onChange={(e) => {
          setSlug(e.target.value);
          setSlugEdited(true);
        }}
        aria-describedby={`${ids.slug}-hint`}
        aria-invalid={create.isError}
        required
        data-testid="workspace-slug-input"
      />
      <p id={`${ids.slug}-hint`} className="hint">
        Lowercase letters, digits and dashes, e.g. growth-team.
      </p>
      {create.isError ? (
        <p id={ids.error} className="form-error" role="alert">
          {errorMessage(create.error)}
        </p>
      ) : null}
      <button
        type="submit"
        className="button button-primary"
        disabled={create.isPending || !slug.trim() || !name.trim()}
      >
        {create.isPending ? "Creating…" : "Create workspace"}
      </button>
    </form>
  );
}

export function FirstWorkspacePage({ session }: { session: SessionInfo }) {
  const signOut = useSignOut();
  const mayCreate = session.member?.installationAdmin === true;
  const title = mayCreate ? "Create your first workspace" : "No workspace yet";
  return (
    <main className="center-page" id="main">
      <div className="signin card" data-testid="first-workspace">
        <p className="brand brand-static">
          <span className="brand-mark" aria-hidden="true">
            ◎
          </span>
          Outcome Runtime
        </p>
        <PageTitle title={title}>{title}</PageTitle>
        {mayCreate ? (
          <>
            <p className="lead">
              A workspace holds one team's outcomes, experiments and settings. You will be its admin.
            </p>
            <CreateWorkspaceForm />
          </>
        ) : (
          <p data-testid="no-workspace">You belong to no workspace yet; ask an admin for an invitation.</p>
        )}
        <p className="signin-footer small text-muted">
          Signed in as <span data-testid="signed-in-as">{session.member?.email}</span> ·{" "}
          <button type="button" className="link-button link-button-plain" onClick={() => signOut.mutate()}>
            Sign out
          </button>
        </p>
      </div>
    </main>
  );
}
