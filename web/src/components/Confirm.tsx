import type { ComponentChildren } from "preact";
import { useEffect, useId, useRef, useState } from "preact/hooks";

interface Props {
  /** The button's text ("Reject"), and its accessible name if different ("Reject web-9"). */
  label: string;
  ariaLabel?: string;
  testid: string;
  /** What it does, asked before it is done. */
  question: ComponentChildren;
  /** The text of the button that does it. */
  confirm: string;
  onConfirm(): Promise<void>;
  disabled?: boolean;
}

/**
 * A danger button that asks first, inline: the question, a button that does it and one that
 * does not. The one that does not has the focus (Enter does no harm), Escape closes the
 * question, and the focus then goes back to the button.
 */
export function ConfirmButton({ label, ariaLabel, testid, question, confirm, onConfirm, disabled }: Props) {
  const [open, setOpen] = useState(false);
  const [busy, setBusy] = useState(false);
  const trigger = useRef<HTMLButtonElement>(null);
  const cancel = useRef<HTMLButtonElement>(null);
  const id = useId();
  useEffect(() => {
    if (open) cancel.current?.focus();
  }, [open]);
  const close = () => {
    setOpen(false);
    trigger.current?.focus();
  };
  const yes = async () => {
    setBusy(true);
    try {
      await onConfirm();
    } finally {
      setBusy(false);
      setOpen(false);
    }
  };
  return (
    <div class="confirm-wrap">
      <button
        ref={trigger}
        type="button"
        class="danger"
        data-testid={testid}
        aria-label={ariaLabel}
        aria-expanded={open}
        aria-controls={open ? id : undefined}
        disabled={disabled || busy}
        onClick={() => setOpen(true)}
      >
        {label}
      </button>
      {open && (
        <div
          id={id}
          class="confirm"
          role="group"
          aria-labelledby={`${id}-q`}
          data-testid={`${testid}-confirm`}
          onKeyDown={(e) => {
            if (e.key === "Escape") close();
          }}
        >
          <p id={`${id}-q`}>{question}</p>
          <div class="buttons">
            <button type="button" class="danger" data-testid={`${testid}-yes`} disabled={busy} onClick={() => void yes()}>
              {confirm}
            </button>
            <button ref={cancel} type="button" data-testid={`${testid}-no`} disabled={busy} onClick={close}>
              Cancel
            </button>
          </div>
        </div>
      )}
    </div>
  );
}
