/**
 * Outcome from a sentence: the `draft_outcome` operation of the LLM gateway
 * (the rules engine when no LLM is configured or it fails), checked with
 * packages/spec and written as an outcome.yaml with a `# TODO:` comment above
 * each field the person must fill in.
 */
import { authorize, DomainError } from "@outcome-runtime/core";
import {
  type DraftTodo,
  draftOutcomeByRules,
  draftOutcomeYaml,
  type FallbackReason,
  type Gateway,
  RulesError,
} from "@outcome-runtime/llm";
import { parseOutcome } from "@outcome-runtime/spec";
import { type Caller, nowOf, type RuntimeDeps } from "./context";

export type { Gateway, LlmConfig } from "@outcome-runtime/llm";
export { llmConfigFromEnv } from "@outcome-runtime/llm";

/** The longest sentence accepted, in characters. */
export const MAX_DRAFT_SENTENCE_LENGTH = 500;

export interface DraftOutcomeDeps extends RuntimeDeps {
  readonly gateway: Gateway;
}

export interface DraftOutcomeResult {
  /** The outcome.yaml text: schema modeline, origin, then the document with `# TODO:` comments. */
  readonly yaml: string;
  /** The drafted document, as written (percentages as text). */
  readonly outcome: Record<string, unknown>;
  /** Fields to fill in or check, by dotted path. */
  readonly todos: readonly DraftTodo[];
  /** `llm:<model>` or `rules`. */
  readonly source: string;
  /**
   * Why the rules engine drafted instead of the LLM: the gateway's reason, or
   * `invalid_output` when the LLM's draft did not pass packages/spec; `null`
   * when the LLM drafted or none is configured.
   */
  readonly fallbackReason: FallbackReason | null;
}

function sentenceError(message: string): DomainError {
  return new DomainError("validation_failed", message, { field: "sentence" });
}

/** Run `draft` and turn "the sentence is not understood" into a `validation_failed` on `sentence`. */
async function understood<T>(draft: () => T | Promise<T>): Promise<T> {
  try {
    return await draft();
  } catch (error) {
    if (error instanceof RulesError && error.code === "sentence_not_understood") throw sentenceError(error.message);
    throw error;
  }
}

/**
 * Draft an outcome.yaml from one sentence such as "Cut checkout abandonment
 * from 68% to 60% in 6 weeks". The gateway meters and audits the call
 * (`llm.call`); a draft from the LLM that packages/spec rejects is replaced by
 * the rules engine's, with `fallbackReason: "invalid_output"`. The result
 * always passes `parseOutcome`. Nothing is stored.
 *
 * @throws DomainError `forbidden` (`outcome.draft`); `validation_failed` (field `sentence`) for an empty or
 *   too long sentence, or one the rules engine cannot read (its message says
 *   what was missing and gives an example).
 */
export async function draftOutcome(
  deps: DraftOutcomeDeps,
  caller: Caller,
  input: { readonly sentence: string },
): Promise<DraftOutcomeResult> {
  authorize(caller, "outcome.draft");
  const sentence = input.sentence.trim();
  if (sentence.length === 0) throw sentenceError("sentence is empty: describe the outcome in one sentence");
  if (sentence.length > MAX_DRAFT_SENTENCE_LENGTH) {
    throw sentenceError(`sentence is longer than ${MAX_DRAFT_SENTENCE_LENGTH} characters: keep it to one sentence`);
  }
  const today = nowOf(deps).toISOString().slice(0, 10);
  const drafted = await understood(() =>
    deps.gateway.run(
      "draft_outcome",
      { sentence, today },
      {
        workspaceId: caller.principal.workspaceId,
        actor: caller.principal,
        channel: caller.channel,
        requestId: caller.requestId,
      },
    ),
  );

  const fromGateway = checked(drafted.output, sentence, drafted.source);
  if (fromGateway !== null) return { ...fromGateway, fallbackReason: drafted.fallbackReason };
  if (drafted.source === "rules") throw new Error(`the rules engine drafted an invalid outcome for "${sentence}"`);
  // The LLM's draft passed the operation's output schema but not the outcome
  // schema (packages/spec is stricter): the rules engine drafts instead.
  const rules = await understood(() => draftOutcomeByRules({ sentence, today }));
  const fromRules = checked(rules, sentence, "rules");
  if (fromRules === null) throw new Error(`the rules engine drafted an invalid outcome for "${sentence}"`);
  return { ...fromRules, fallbackReason: "invalid_output" };
}

/** The draft rendered as YAML, or `null` when packages/spec rejects it. */
function checked(
  draft: { outcome: Record<string, unknown>; todos: DraftTodo[] },
  sentence: string,
  source: string,
): Omit<DraftOutcomeResult, "fallbackReason"> | null {
  const yaml = draftOutcomeYaml(draft, { sentence, source });
  return parseOutcome(yaml).ok ? { yaml, outcome: draft.outcome, todos: draft.todos, source } : null;
}
