/**
 * The workspace's API keys (admins): the list (never a key, only its first
 * characters), a form to create one, whose key is shown once, here, to copy,
 * and revocation after a confirmation.
 */

import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { type FormEvent, useId, useState } from "react";
import { errorMessage, request } from "../api";
import { ConfirmDialog } from "../components/confirm-dialog";
import { CopyField } from "../components/copy-field";
import { RoleField } from "../components/role-field";
import { Empty, ErrorState, Loading, PageTitle } from "../components/ui";
import { formatDateTime } from "../format";
import { API_KEY_ROLES, API_KEY_SCOPES } from "../roles";
import type { ApiKey, ApiKeyCreated, ApiKeyList, ApiKeyRole, ApiKeyScope } from "../types";

const KEYS_KEY = ["keys"] as const;

function NewKey({ created, onDone }: { created: ApiKeyCreated; onDone: () => void }) {
  return (
    <section className="section card new-key" aria-labelledby="new-key-h" data-testid="new-key">
      <h2 id="new-key-h">The key “{created.name}”</h2>
      <p className="banner banner-warn" role="status">
        Copy it now: it is shown this once, and neither the dashboard nor the API can show it again.
      </p>
      <CopyField label="New API key" value={created.key} testId="new-key-value" />
      <p className="small text-muted">
        Role {created.role} · scopes {created.scopes.join(", ")} · starts with <code>{created.prefix}</code>
      </p>
      <button type="button" className="button" onClick={onDone}>
        I have stored it
      </button>
    </section>
  );
}

function CreateKeyForm({ onCreated }: { onCreated: (created: ApiKeyCreated) => void }) {
  const queryClient = useQueryClient();
  const [name, setName] = useState("");
  const [role, setRole] = useState<ApiKeyRole>("agent");
  const [scopes, setScopes] = useState<ApiKeyScope[]>([]);
  const create = useMutation({
    mutationFn: (input: { name: string; role: ApiKeyRole; scopes?: ApiKeyScope[] }) =>
      request<ApiKeyCreated>("/v1/keys", { method: "POST", body: input }),
    onSuccess: (created) => {
      void queryClient.invalidateQueries({ queryKey: KEYS_KEY });
      setName("");
      setScopes([]);
      onCreated(created);
    },
  });
  const ids = { name: useId(), role: useId(), scopes: useId(), error: useId() };

  const submit = (event: FormEvent) => {
    event.preventDefault();
    if (!name.trim()) return;
    // No scope ticked: the API gives the role's own.
    const chosen = API_KEY_SCOPES.filter((s) => scopes.includes(s));
    create.mutate({ name: name.trim(), role, ...(chosen.length > 0 ? { scopes: chosen } : {}) });
  };

  return (
    <section className="section card" aria-labelledby={`${ids.name}-h`}>
      <h2 id={`${ids.name}-h`}>Create a key</h2>
      <form onSubmit={submit} noValidate className="key-form">
        <div className="filters-form">
          <div className="field field-grow">
            <label htmlFor={ids.name}>Name</label>
            <input
              id={ids.name}
              value={name}
              maxLength={200}
              onChange={(e) => setName(e.target.value)}
              aria-describedby={`${ids.name}-hint`}
              required
              data-testid="key-name"
            />
          </div>
          <RoleField id={ids.role} roles={API_KEY_ROLES} value={role} onChange={setRole} testId="key-role" />
        </div>
        <p id={`${ids.name}-hint`} className="hint">
          A person's email or an agent's name: the audit log shows it for everything done with the key.
        </p>
        <fieldset className="scopes" aria-describedby={`${ids.scopes}-hint`}>
          <legend>Scopes</legend>
          {API_KEY_SCOPES.map((s) => (
            <label key={s} className="checkbox">
              <input
                type="checkbox"
                name="scopes"
                value={s}
                checked={scopes.includes(s)}
                onChange={(e) => setScopes(e.target.checked ? [...scopes, s] : scopes.filter((x) => x !== s))}
              />
              {s}
            </label>
          ))}
          <p id={`${ids.scopes}-hint`} className="hint">
            read: reading and the MCP read tools; write: the changes the role allows; admin: keys, settings, export and
            import. None ticked: what the role allows.
          </p>
        </fieldset>
        {create.isError ? (
          <p id={ids.error} className="form-error" role="alert">
            {errorMessage(create.error)}
          </p>
        ) : null}
        <button type="submit" className="button button-primary" disabled={create.isPending || !name.trim()}>
          {create.isPending ? "Creating…" : "Create key"}
        </button>
      </form>
    </section>
  );
}

function KeysTable({ keys, onRevoke }: { keys: ApiKey[]; onRevoke: (key: ApiKey) => void }) {
  return (
    <div className="table-wrap">
      <table data-testid="api-keys">
        <caption className="visually-hidden">API keys of the workspace, oldest first</caption>
        <thead>
          <tr>
            <th scope="col">Name</th>
            <th scope="col">Role</th>
            <th scope="col">Scopes</th>
            <th scope="col">Prefix</th>
            <th scope="col">Created</th>
            <th scope="col">Last used</th>
            <th scope="col">Revoked</th>
            <th scope="col">
              <span className="visually-hidden">Actions</span>
            </th>
          </tr>
        </thead>
        <tbody>
          {keys.map((k) => (
            <tr
              key={k.id}
              data-testid="api-key-row"
              data-name={k.name}
              data-revoked={k.revokedAt !== null}
              className={k.revokedAt ? "row-revoked" : undefined}
            >
              <td>{k.name}</td>
              <td>{k.role}</td>
              <td>{k.scopes.join(", ")}</td>
              <td>
                <code className="key-prefix">{k.prefix}</code>
              </td>
              <td>{formatDateTime(k.createdAt)}</td>
              <td>{k.lastUsedAt ? formatDateTime(k.lastUsedAt) : "never"}</td>
              <td>{k.revokedAt ? formatDateTime(k.revokedAt) : "—"}</td>
              <td>
                {k.revokedAt ? null : (
                  <button type="button" className="button button-small" onClick={() => onRevoke(k)}>
                    Revoke
                  </button>
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

export function KeysPage() {
  const queryClient = useQueryClient();
  const list = useQuery({ queryKey: KEYS_KEY, queryFn: () => request<ApiKeyList>("/v1/keys") });
  const [created, setCreated] = useState<ApiKeyCreated | null>(null);
  const [revoking, setRevoking] = useState<ApiKey | null>(null);
  const revoke = useMutation({
    mutationFn: (key: ApiKey) => request(`/v1/keys/${encodeURIComponent(key.id)}`, { method: "DELETE" }),
    onSuccess: () => {
      setRevoking(null);
      void queryClient.invalidateQueries({ queryKey: KEYS_KEY });
    },
  });

  return (
    <>
      <PageTitle title="API keys">API keys</PageTitle>
      <p className="lead">
        Keys for agents, scripts and the CLI. Each acts with its role and scopes in this workspace.
      </p>
      {list.isPending ? (
        <Loading label="Loading the keys…" />
      ) : list.isError ? (
        <ErrorState error={list.error} onRetry={() => list.refetch()} />
      ) : (
        <>
          {created ? <NewKey created={created} onDone={() => setCreated(null)} /> : null}
          <CreateKeyForm onCreated={setCreated} />
          <section className="section" aria-labelledby="keys-h">
            <h2 id="keys-h">Keys</h2>
            {list.data.keys.length === 0 ? (
              <Empty title="No API keys yet">
                <p>
                  Create one above, or with <code>outcome-runtime keys create</code>.
                </p>
              </Empty>
            ) : (
              <KeysTable
                keys={list.data.keys}
                onRevoke={(k) => {
                  revoke.reset();
                  setRevoking(k);
                }}
              />
            )}
          </section>
        </>
      )}
      {revoking ? (
        <ConfirmDialog
          title={`Revoke the key “${revoking.name}”?`}
          confirmLabel="Revoke"
          pending={revoke.isPending}
          error={revoke.error}
          onConfirm={() => revoke.mutate(revoking)}
          onCancel={() => {
            setRevoking(null);
            revoke.reset();
          }}
        >
          <p>
            The key starting with <code>{revoking.prefix}</code> is refused from the next request on, wherever it is
            used. This cannot be undone.
          </p>
        </ConfirmDialog>
      ) : null}
    </>
  );
}
