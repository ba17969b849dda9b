import { useEffect, useRef, useState } from "preact/hooks";

interface Props {
  label: string;
  id: string;
  testid: string;
  value: string;
  /** Take the focus when shown (its text selected, ready to copy). */
  focus?: boolean;
}

/** A read-only text to copy: selected whole on focus, and a Copy button. */
export function CopyField({ label, id, testid, value, focus }: Props) {
  const input = useRef<HTMLInputElement>(null);
  const [said, setSaid] = useState("");
  useEffect(() => {
    if (focus) input.current?.focus();
  }, [focus]);
  useEffect(() => setSaid(""), [value]);
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(value);
      setSaid("copied");
    } catch {
      // No clipboard here (a page not served over HTTPS, or no permission): select the text.
      input.current?.focus();
      input.current?.select();
      setSaid("selected: press Ctrl+C (⌘C) to copy");
    }
  };
  return (
    <div class="field copy-field">
      <label for={id}>{label}</label>
      <div class="copy-row">
        <input ref={input} id={id} data-testid={testid} readOnly value={value} spellcheck={false} autoComplete="off" onFocus={(e) => e.currentTarget.select()} />
        <button type="button" aria-label={`copy: ${label}`} onClick={() => void copy()}>
          Copy
        </button>
      </div>
      <span class="muted small" role="status">
        {said}
      </span>
    </div>
  );
}
