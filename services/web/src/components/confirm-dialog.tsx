/**
 * A modal question before a change that cannot be undone (remove a member,
 * revoke a key): the native `<dialog>`, so focus stays inside and Escape
 * cancels. The confirm button repeats the action's name.
 */
import { type ReactNode, useEffect, useId, useRef } from "react";
import { errorMessage } from "../api";

export function ConfirmDialog({
  title,
  children,
  confirmLabel,
  pending,
  error,
  onConfirm,
  onCancel,
}: {
  title: string;
  children: ReactNode;
  /** The confirm button's text, e.g. "Remove". */
  confirmLabel: string;
  pending: boolean;
  /** The failed attempt's error, shown in the dialog. */
  error: unknown;
  onConfirm: () => void;
  onCancel: () => void;
}) {
  const ref = useRef<HTMLDialogElement>(null);
  const ids = { title: useId(), body: useId() };
  useEffect(() => {
    const dialog = ref.current;
    if (dialog && !dialog.open) dialog.showModal();
    return () => dialog?.close();
  }, []);
  return (
    <dialog
      ref={ref}
      className="confirm-dialog"
      aria-labelledby={ids.title}
      aria-describedby={ids.body}
      onCancel={(e) => {
        e.preventDefault();
        if (!pending) onCancel();
      }}
      data-testid="confirm-dialog"
    >
      <h2 id={ids.title}>{title}</h2>
      <div id={ids.body}>{children}</div>
      {error ? (
        <p className="form-error" role="alert">
          {errorMessage(error)}
        </p>
      ) : null}
      <div className="dialog-actions">
        <button type="button" className="button" onClick={onCancel} disabled={pending}>
          Cancel
        </button>
        <button
          type="button"
          className="button button-danger"
          onClick={onConfirm}
          disabled={pending}
          data-testid="confirm-button"
        >
          {confirmLabel}
        </button>
      </div>
    </dialog>
  );
}
