import type { InputHTMLAttributes } from "preact";

interface TextProps extends Omit<InputHTMLAttributes<HTMLInputElement>, "value" | "onInput" | "label"> {
  label: string;
  value: string;
  onValue(value: string): void;
  error?: string | undefined;
}

/** A labelled text input, with its problem said next to it. */
export function TextField({ label, value, onValue, error, id, ...rest }: TextProps) {
  const fieldId = id ?? `f-${label.replace(/\W+/g, "-").toLowerCase()}`;
  return (
    <div class={`field${error ? " invalid" : ""}`}>
      <label for={fieldId}>{label}</label>
      <input
        {...rest}
        id={fieldId}
        value={value}
        aria-invalid={error ? "true" : undefined}
        aria-describedby={error ? `${fieldId}-err` : undefined}
        onInput={(e) => onValue((e.currentTarget as HTMLInputElement).value)}
      />
      {error && (
        <span class="field-error" id={`${fieldId}-err`}>
          {error}
        </span>
      )}
    </div>
  );
}

interface SelectProps {
  label: string;
  value: string;
  options: (string | [string, string])[];
  onValue(value: string): void;
  id?: string;
  testid?: string;
}

export function SelectField({ label, value, options, onValue, id, testid }: SelectProps) {
  const fieldId = id ?? `f-${label.replace(/\W+/g, "-").toLowerCase()}`;
  return (
    <div class="field">
      <label for={fieldId}>{label}</label>
      <select id={fieldId} value={value} data-testid={testid} onChange={(e) => onValue((e.currentTarget as HTMLSelectElement).value)}>
        {options.map((o) => {
          const [v, text] = typeof o === "string" ? [o, o || "any"] : o;
          return (
            <option key={v} value={v}>
              {text}
            </option>
          );
        })}
      </select>
    </div>
  );
}
