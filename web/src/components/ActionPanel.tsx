import { useEffect, useRef, useState } from "preact/hooks";
import { post } from "../api/client";
import { errorText } from "../api/errors";
import type { Action, ActionKind, CommandSpec, GridService, ParamSpec, PlanOut } from "../api/types";
import { actionBody, DEFAULT_STRATEGY, defaultParams, describeTarget, planBody, planKey, type ActionForm, type Errors, type StrategyForm } from "../lib/actionform";
import { plural } from "../lib/plural";
import { navigate } from "../lib/router";
import { SelectField, TextField } from "./Field";
import { actionHref } from "./Link";

interface Props {
  application: string;
  services: GridService[];
  commands: CommandSpec[];
  hosts: string[]; // selected
  selectedServices: string[];
  /** The grid is filtered (search, status, labels): the filter does not limit the action. */
  filtered: boolean;
  onError(text: string | null): void;
}

const KINDS: ActionKind[] = ["restart", "start", "stop", "command"];

export function ActionPanel({ application, services, commands, hosts, selectedServices, filtered, onError }: Props) {
  const [kind, setKind] = useState<ActionKind>("restart");
  const [command, setCommand] = useState("");
  const [params, setParams] = useState<Record<string, string | boolean>>({});
  const [strategy, setStrategy] = useState<StrategyForm>(DEFAULT_STRATEGY);
  const [errors, setErrors] = useState<Errors>({});
  // The plan shown, with the key of the request it answers: shown only while the form still
  // makes that request (an answer for an older form is never shown).
  const [plan, setPlan] = useState<{ key: string; plan: PlanOut } | null>(null);
  const [busy, setBusy] = useState(false);

  const spec = commands.find((c) => c.name === command);
  useEffect(() => setParams(defaultParams(spec?.params ?? [])), [command]);

  const form: ActionForm = {
    application,
    kind,
    command,
    params,
    paramSpecs: spec?.params ?? [],
    services: selectedServices,
    allServices: services.map((s) => s.name),
    hosts,
    strategy,
  };
  const formKey = planKey(actionBody(form).body);
  const formKeyRef = useRef(formKey);
  formKeyRef.current = formKey;
  const shownPlan = plan && plan.key === formKey ? plan.plan : null;
  const reach = shownPlan ? shownPlan.batches.reduce((n, b) => n + b.length, 0) : null;

  const check = () => {
    const checked = actionBody(form);
    setErrors(checked.errors);
    if (!checked.body) onError("The action form has problems: see the fields marked.");
    return checked.body;
  };

  const send = async (what: "plan" | "run") => {
    const body = check();
    if (!body) return;
    setBusy(true);
    onError(null);
    try {
      if (what === "plan") {
        const key = planKey(body);
        const answer = await post<PlanOut>("/api/v1/actions/plan", planBody(body));
        if (key !== null && key === formKeyRef.current) setPlan({ key, plan: answer });
      } else {
        const action = await post<Action>("/api/v1/actions", body);
        navigate(actionHref(action.id));
      }
    } catch (err) {
      onError(errorText(err));
    } finally {
      setBusy(false);
    }
  };

  const set = (change: Partial<StrategyForm>) => setStrategy((s) => ({ ...s, ...change }));
  const target = describeTarget(application, kind, command, selectedServices, services.length, hosts);

  return (
    <section class="card action-panel" aria-labelledby="action-title">
      <h2 id="action-title">Action</h2>
      <p class="target" aria-live="polite">
        {target}
      </p>
      {filtered && hosts.length === 0 && (
        <p class="muted" data-testid="filter-note">
          The grid's filter does not limit the action: it reaches every host of {application}, shown or not. Select hosts to limit it.
        </p>
      )}
      {errors.services && <p class="field-error">{errors.services}</p>}
      <form
        onSubmit={(e) => {
          e.preventDefault();
          void send("plan");
        }}
      >
        <div class="row">
          <SelectField label="Kind" id="action-kind" testid="action-kind" value={kind} options={commands.length ? KINDS : KINDS.slice(0, 3)} onValue={(v) => setKind(v as ActionKind)} />
          {kind === "command" && (
            <SelectField
              label="Command"
              id="action-command"
              value={command}
              options={[["", "choose…"], ...commands.map((c): [string, string] => [c.name, c.name])]}
              onValue={setCommand}
            />
          )}
        </div>
        {errors.command && <p class="field-error">{errors.command}</p>}
        {kind === "command" && spec && (
          <fieldset>
            <legend>Parameters of {spec.name}</legend>
            {spec.description && <p class="muted">{spec.description}</p>}
            {spec.params.length === 0 && <p class="muted">none</p>}
            <div class="row">
              {spec.params.map((p) => (
                <ParamField key={p.name} spec={p} value={params[p.name]} error={errors[`param.${p.name}`]} onValue={(v) => setParams((old) => ({ ...old, [p.name]: v }))} />
              ))}
            </div>
          </fieldset>
        )}
        <fieldset>
          <legend>Strategy</legend>
          <div class="row">
            <SelectField
              label="Batch by"
              id="batch-by"
              value={strategy.batchBy}
              options={[
                ["size", "hosts per batch"],
                ["percent", "% of hosts per batch"],
              ]}
              onValue={(v) => set({ batchBy: v as StrategyForm["batchBy"] })}
            />
            <TextField
              label={strategy.batchBy === "percent" ? "Batch %" : "Batch size"}
              id="batch-size"
              data-testid="batch-size"
              inputMode="numeric"
              placeholder="all at once"
              value={strategy.batch}
              onValue={(batch) => set({ batch })}
              error={errors.batch}
            />
            <TextField label="Pause (s)" id="pause-s" inputMode="decimal" placeholder="0" value={strategy.pause} onValue={(pause) => set({ pause })} error={errors.pause} />
            <TextField label="Health gate (s)" id="health-gate-s" inputMode="decimal" placeholder="0" value={strategy.healthGate} onValue={(healthGate) => set({ healthGate })} error={errors.healthGate} />
            <TextField label="Max failures" id="max-failures" inputMode="numeric" placeholder="0" value={strategy.maxFailures} onValue={(maxFailures) => set({ maxFailures })} error={errors.maxFailures} />
            <TextField label="Per-host timeout (s)" id="host-timeout-s" inputMode="decimal" placeholder="deadline" value={strategy.hostTimeout} onValue={(hostTimeout) => set({ hostTimeout })} error={errors.hostTimeout} />
            <TextField label="Deadline (s)" id="deadline-s" inputMode="decimal" value={strategy.deadline} onValue={(deadline) => set({ deadline })} error={errors.deadline} />
          </div>
        </fieldset>
        <div class="buttons">
          <button type="submit" data-testid="preview-button" disabled={busy}>
            Preview
          </button>
          <button type="button" class="primary" data-testid="run-button" disabled={busy} onClick={() => void send("run")}>
            Run
          </button>
          {reach !== null && (
            <span class="reach" data-testid="run-reach">
              reaches {plural(reach, "host")}
            </span>
          )}
        </div>
      </form>
      {shownPlan && (
        <div data-testid="plan" class="plan" aria-live="polite">
          <h3>
            Plan: {plural(reach ?? 0, "host")} in {plural(shownPlan.batches.length, "batch", "batches")}
            {shownPlan.services.length > 0 && ` — ${shownPlan.services.join(", ")}`}
          </h3>
          {shownPlan.batches.length === 0 ? (
            <p>No host would be reached.</p>
          ) : (
            <ol>
              {shownPlan.batches.map((batch, i) => (
                <li key={i} data-testid={`plan-batch-${i + 1}`}>
                  batch {i + 1}: {batch.join(", ")}
                </li>
              ))}
            </ol>
          )}
        </div>
      )}
    </section>
  );
}

function ParamField({ spec, value, error, onValue }: { spec: ParamSpec; value: string | boolean | undefined; error: string | undefined; onValue(v: string | boolean): void }) {
  const id = `param-${spec.name}`;
  const label = `${spec.name}${spec.required ? " (required)" : ""}`;
  if (spec.type === "boolean")
    return (
      <div class="field check">
        <input id={id} type="checkbox" checked={value === true} onChange={(e) => onValue(e.currentTarget.checked)} />
        <label for={id}>{label}</label>
      </div>
    );
  if (spec.type === "choice")
    return (
      <div class={`field${error ? " invalid" : ""}`}>
        <label for={id}>{label}</label>
        <select id={id} value={String(value ?? "")} onChange={(e) => onValue(e.currentTarget.value)} required={spec.required}>
          {(!spec.required || spec.default === null) && <option value="">—</option>}
          {(spec.choices ?? []).map((c) => (
            <option key={c} value={c}>
              {c}
            </option>
          ))}
        </select>
        {error && <span class="field-error">{error}</span>}
      </div>
    );
  const hint =
    spec.type === "integer"
      ? [spec.minimum !== null && `≥ ${spec.minimum}`, spec.maximum !== null && `≤ ${spec.maximum}`].filter(Boolean).join(", ")
      : spec.pattern
        ? `matches ${spec.pattern}`
        : "";
  return (
    <TextField
      label={label}
      id={id}
      value={String(value ?? "")}
      onValue={onValue}
      error={error}
      inputMode={spec.type === "integer" ? "numeric" : undefined}
      placeholder={hint || spec.description}
      title={spec.description || undefined}
    />
  );
}
