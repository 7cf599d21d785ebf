/** Error thrown by the rules engine, with a stable snake_case `code`. */
export type RulesErrorCode = "invalid_playbook" | "no_hypotheses_available" | "sentence_not_understood";

export class RulesError extends Error {
  readonly code: RulesErrorCode;
  readonly details: Readonly<Record<string, unknown>>;

  constructor(code: RulesErrorCode, message: string, details: Record<string, unknown> = {}) {
    super(message);
    this.name = "RulesError";
    this.code = code;
    this.details = details;
  }
}
