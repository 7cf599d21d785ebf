/**
 * A value to take away (a new API key, an invitation link): read-only, selected
 * on focus, with a Copy button that says whether the copy worked.
 */
import { useId, useRef, useState } from "react";

export function CopyField({ label, value, testId }: { label: string; value: string; testId?: string }) {
  const id = useId();
  const input = useRef<HTMLInputElement>(null);
  const [copied, setCopied] = useState<"idle" | "copied" | "failed">("idle");
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(value);
      setCopied("copied");
    } catch {
      // No clipboard (an insecure origin, a refused permission): select it for the reader to copy.
      input.current?.select();
      setCopied("failed");
    }
  };
  return (
    <div className="copy-field">
      <label htmlFor={id}>{label}</label>
      <div className="copy-row">
        <input
          id={id}
          ref={input}
          className="mono"
          value={value}
          readOnly
          spellCheck={false}
          onFocus={(e) => e.currentTarget.select()}
          data-testid={testId}
        />
        <button type="button" className="button" onClick={() => void copy()}>
          Copy
        </button>
      </div>
      <p className="hint" role="status">
        {copied === "copied" ? "Copied." : copied === "failed" ? "Could not copy: it is selected, press Ctrl+C." : ""}
      </p>
    </div>
  );
}
