/**
 * Plain-text rendering of API responses for people at a terminal.
 */

interface OutcomeLike {
  slug: string;
  name: string;
  state: string;
  revision: number;
  owner: string;
  spec?: { target?: { value?: number; direction?: string; relative?: boolean }; signal?: { metric?: string } };
}

function target(o: OutcomeLike): string {
  const t = o.spec?.target;
  if (!t || t.value === undefined) return "";
  const value = t.relative ? `${+(t.value * 100).toFixed(4)}%` : String(t.value);
  return `${t.direction} ${o.spec?.signal?.metric ?? "signal"} ${t.relative ? "by" : "to"} ${value}`;
}

function counts(c: Record<string, number> | undefined): string {
  const entries = Object.entries(c ?? {});
  return entries.length === 0 ? "no experiments" : entries.map(([k, v]) => `${v} ${k}`).join(", ");
}

function list(items: unknown[]): string {
  if (items.length === 0) return "No outcomes yet. Apply one with: outcome-runtime apply outcome.yaml";
  return (items as { outcome: OutcomeLike; experimentCounts: Record<string, number>; pendingGates: number }[])
    .map(
      (s) =>
        `${s.outcome.slug}  [${s.outcome.state}]  rev ${s.outcome.revision}\n` +
        `  ${s.outcome.name}\n  target: ${target(s.outcome)}\n  experiments: ${counts(s.experimentCounts)}; pending gates: ${s.pendingGates}`,
    )
    .join("\n\n");
}

/** One outcome with every revision, experiment and gate (read page by page from their own endpoints). */
function detail(
  d: { outcome: OutcomeLike; experimentCounts: Record<string, number> },
  lists: {
    revisions: readonly { revision: number; createdBy: string; createdAt: string }[];
    experiments: readonly { key: string; state: string; title: string }[];
    gates: readonly { kind: string; status: string; assignees: string[]; dueAt: string }[];
  },
): string {
  const o = d.outcome;
  const { revisions, experiments, gates } = lists;
  const lines = [
    `${o.slug}  [${o.state}]  revision ${o.revision}`,
    `  ${o.name} (owner ${o.owner})`,
    `  target: ${target(o)}`,
    `  revisions: ${revisions.map((r) => `#${r.revision} by ${r.createdBy} at ${r.createdAt}`).join("; ")}`,
    `  experiments: ${counts(d.experimentCounts)}`,
    ...experiments.map((e) => `    - ${e.key} [${e.state}] ${e.title}`),
    `  gates:${gates.length === 0 ? " none" : ""}`,
    ...gates.map((g) => `    - ${g.kind} [${g.status}] assignees ${g.assignees.join(", ")}, due ${g.dueAt}`),
  ];
  return lines.join("\n");
}

export const renderStatus = { list, detail };
