/**
 * Create or edit an outcome as outcome.yaml: validated live by the API (the
 * same checks and error list as `outcome-runtime validate`), applied with one click.
 */
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { type ReactNode, useEffect, useId, useRef, useState } from "react";
import { Link, useParams } from "react-router";
import { ApiError, errorMessage, request } from "../api";
import { ErrorState, Loading, PageTitle } from "../components/ui";
import type { Outcome, OutcomeDetail, SpecError, ValidateResult } from "../types";

const TEMPLATE = `# yaml-language-server: $schema=https://outcome-runtime.dev/schemas/outcome.schema.json
version: 1
id: signup-conversion
name: Raise signup conversion
owner: you@example.com

signal:
  metric: signup_rate
  kind: proportion
  baseline: 0.18
  poll_interval: 1h
  connector:
    type: csv
    path: data/signups.csv

target:
  direction: increase
  value: 10%
  relative: true

horizon: 6w
`;

const FILE = "outcome.yaml";

function formatError(e: SpecError): string {
  return `${e.file ?? FILE}:${e.line}:${e.column}: error[${e.code}]: ${e.message}`;
}

function errorsOf(error: unknown): SpecError[] | null {
  if (!(error instanceof ApiError) || !Array.isArray(error.problem.errors)) return null;
  const list = error.problem.errors.filter(
    (x): x is SpecError => typeof x === "object" && x !== null && "line" in x && "message" in x,
  );
  return list.length > 0 ? list : null;
}

/** Live validation: debounced POST /v1/outcomes/validate of the current text. */
function useLiveValidation(text: string) {
  const [debounced, setDebounced] = useState(text);
  useEffect(() => {
    const t = setTimeout(() => setDebounced(text), 400);
    return () => clearTimeout(t);
  }, [text]);
  return useQuery({
    queryKey: ["validate", debounced],
    queryFn: ({ signal }) =>
      request<ValidateResult>(`/v1/outcomes/validate?file=${FILE}`, {
        method: "POST",
        body: debounced,
        contentType: "application/yaml",
        signal,
      }),
    enabled: debounced.trim().length > 0,
    staleTime: Number.POSITIVE_INFINITY,
    retry: false,
    placeholderData: (previous) => previous,
  });
}

function ErrorList({ errors, onPick }: { errors: SpecError[]; onPick: (e: SpecError) => void }) {
  return (
    <ol className="diagnostics" data-testid="validation-errors">
      {errors.map((e) => (
        <li key={`${e.line}:${e.column}:${e.code}:${e.message}`}>
          <button type="button" className="link-button mono" onClick={() => onPick(e)}>
            {formatError(e)}
          </button>
          {e.hint ? <p className="diagnostic-hint">hint: {e.hint}</p> : null}
        </li>
      ))}
    </ol>
  );
}

function Editor({ initial, existing }: { initial: string; existing: Outcome | null }) {
  const [text, setText] = useState(initial);
  const area = useRef<HTMLTextAreaElement>(null);
  const escaped = useRef(false);
  const editorId = useId();
  const statusId = useId();
  const queryClient = useQueryClient();
  const validation = useLiveValidation(text);
  const apply = useMutation({
    mutationFn: () =>
      request<{ status: "created" | "revised" | "unchanged"; outcome: Outcome }>(`/v1/outcomes?file=${FILE}`, {
        method: "POST",
        body: text,
        contentType: "application/yaml",
      }),
    onSuccess: () => {
      void queryClient.invalidateQueries({ queryKey: ["outcomes"] });
      void queryClient.invalidateQueries({ queryKey: ["outcome"] });
    },
  });

  /** Put the caret on the error's line and column. */
  const pick = (e: SpecError) => {
    const el = area.current;
    if (!el) return;
    const lines = el.value.split("\n");
    let offset = 0;
    for (let i = 0; i < Math.max(0, e.line - 1) && i < lines.length; i++) offset += (lines[i]?.length ?? 0) + 1;
    offset += Math.max(0, e.column - 1);
    el.focus();
    el.setSelectionRange(offset, offset);
    const lineHeight = Number.parseFloat(getComputedStyle(el).lineHeight) || 20;
    el.scrollTop = Math.max(0, (e.line - 3) * lineHeight);
  };

  const applyErrors = apply.isError ? errorsOf(apply.error) : null;
  const result = validation.data;
  let status: ReactNode;
  if (!text.trim()) status = <span className="text-muted">Empty document</span>;
  else if (validation.isError)
    status = <span className="text-danger">Could not validate: {errorMessage(validation.error)}</span>;
  else if (!result) status = <span className="text-muted">Validating…</span>;
  else if (result.valid) status = <span className="text-good">✓ Valid outcome.yaml</span>;
  else
    status = (
      <span className="text-danger">
        {result.errors.length} error{result.errors.length === 1 ? "" : "s"}
      </span>
    );

  return (
    <div className="editor-layout">
      <div className="editor-main">
        <label htmlFor={editorId}>outcome.yaml</label>
        <textarea
          id={editorId}
          ref={area}
          className="yaml-editor"
          value={text}
          onChange={(e) => {
            setText(e.target.value);
            if (apply.isSuccess || apply.isError) apply.reset();
          }}
          spellCheck={false}
          autoCapitalize="off"
          autoComplete="off"
          aria-describedby={statusId}
          rows={28}
          data-testid="yaml-editor"
          onKeyDown={(e) => {
            // Tab inserts two spaces (Escape then Tab leaves the editor, as in other code editors).
            if (e.key === "Tab" && !e.shiftKey && !e.altKey && !e.ctrlKey && !e.metaKey && !escaped.current) {
              e.preventDefault();
              const el = e.currentTarget;
              const { selectionStart: s, selectionEnd: end } = el;
              const next = `${el.value.slice(0, s)}  ${el.value.slice(end)}`;
              setText(next);
              requestAnimationFrame(() => el.setSelectionRange(s + 2, s + 2));
            }
            escaped.current = e.key === "Escape";
          }}
        />
        <p className="hint">Tab indents; press Escape then Tab to move on.</p>
      </div>
      <aside className="editor-side" aria-label="Validation">
        <p id={statusId} className="validation-status" role="status" aria-live="polite" data-testid="validation-status">
          {status}
        </p>
        {result && !result.valid ? <ErrorList errors={result.errors} onPick={pick} /> : null}
        <button
          type="button"
          className="button button-primary"
          onClick={() => apply.mutate()}
          disabled={apply.isPending || !text.trim()}
          data-testid="apply-button"
        >
          {apply.isPending ? "Applying…" : existing ? "Apply changes" : "Create outcome"}
        </button>
        {apply.isSuccess ? (
          <div className="notice" role="status" data-testid="apply-result">
            {apply.data.status === "created"
              ? "Created"
              : apply.data.status === "revised"
                ? `Saved as revision ${apply.data.outcome.revision}`
                : "Nothing changed"}
            : <Link to={`/outcomes/${apply.data.outcome.slug}`}>{apply.data.outcome.name}</Link>
            {apply.data.outcome.state === "draft" ? " (a draft: activate it from its page)" : null}
          </div>
        ) : null}
        {apply.isError ? (
          <div className="state state-error" role="alert">
            <p className="state-title">Not applied</p>
            <p>{errorMessage(apply.error)}</p>
            {applyErrors ? <ErrorList errors={applyErrors} onPick={pick} /> : null}
          </div>
        ) : null}
      </aside>
    </div>
  );
}

export function OutcomeEditorPage() {
  const { id } = useParams();
  const detail = useQuery({
    queryKey: ["outcome", id],
    queryFn: () => request<OutcomeDetail>(`/v1/outcomes/${encodeURIComponent(id ?? "")}`),
    enabled: Boolean(id),
  });
  const yaml = useQuery({
    queryKey: ["outcome-yaml", id, detail.data?.outcome.contentHash],
    queryFn: async () => {
      const [{ specToYaml }, schema] = await Promise.all([
        import("../spec-yaml"),
        import("../../../../schemas/outcome.schema.json"),
      ]);
      const spec = detail.data?.outcome.spec ?? {};
      return `# ${detail.data?.outcome.slug} — revision ${detail.data?.outcome.revision}, from the stored spec (percentages as fractions)\n${specToYaml(spec, schema.default as Record<string, unknown>)}`;
    },
    enabled: Boolean(detail.data),
    staleTime: Number.POSITIVE_INFINITY,
  });

  if (!id) {
    return (
      <>
        <PageTitle title="New outcome">New outcome</PageTitle>
        <p className="lead">
          Declare the metric, the target and the horizon. The same file works with{" "}
          <code>npx outcome-runtime apply outcome.yaml</code>.
        </p>
        <Editor initial={TEMPLATE} existing={null} />
      </>
    );
  }
  return (
    <>
      <nav aria-label="Breadcrumb" className="breadcrumb">
        <Link to="/">Outcomes</Link> <span aria-hidden="true">/</span> <Link to={`/outcomes/${id}`}>{id}</Link>{" "}
        <span aria-hidden="true">/</span> <span>edit</span>
      </nav>
      <PageTitle title={`Edit ${id}`}>Edit {detail.data?.outcome.name ?? id}</PageTitle>
      {detail.isPending || (detail.isSuccess && yaml.isPending) ? (
        <Loading label="Loading the outcome…" />
      ) : detail.isError ? (
        <ErrorState error={detail.error} onRetry={() => detail.refetch()} />
      ) : yaml.isError ? (
        <ErrorState error={yaml.error} />
      ) : (
        <Editor key={detail.data.outcome.contentHash} initial={yaml.data ?? ""} existing={detail.data.outcome} />
      )}
    </>
  );
}
