// The action panel's form, turned into the body of POST /api/v1/actions and /actions/plan,
// checked as the server's models (model/strategy.py, model/command.py) would check it.
import type { ActionKind, ParamSpec, Strategy } from "../api/types";

export const WEEK_S = 7 * 24 * 3600;

export interface StrategyForm {
  batchBy: "size" | "percent";
  batch: string; // empty: every host at once
  pause: string;
  healthGate: string;
  maxFailures: string;
  hostTimeout: string;
  deadline: string;
}

export const DEFAULT_STRATEGY: StrategyForm = {
  batchBy: "size",
  batch: "",
  pause: "",
  healthGate: "",
  maxFailures: "",
  hostTimeout: "",
  deadline: "600",
};

export interface ActionForm {
  application: string;
  kind: ActionKind;
  command: string; // kind command: its name
  params: Record<string, string | boolean>;
  paramSpecs: ParamSpec[]; // the chosen command's
  services: string[]; // selected; none: every service
  allServices: string[];
  hosts: string[]; // selected; none: every host
  strategy: StrategyForm;
}

export type ParamValue = string | number | boolean;

export interface ActionBody {
  application: string;
  kind: ActionKind;
  service?: string;
  hosts?: string[];
  strategy?: Strategy;
  deadline_s: number;
  command?: string;
  params?: Record<string, ParamValue>;
}

export type Errors = Record<string, string>;

export interface Checked {
  body: ActionBody | null; // null when there are errors
  errors: Errors;
}

const INTEGER = /^[+-]?\d{1,18}$/;
const NUMBER = /^[+-]?(\d+(\.\d*)?|\.\d+)$/;

function number(
  errors: Errors,
  field: string,
  text: string,
  opts: { integer?: boolean; min: number; max?: number; minExclusive?: boolean },
): number | undefined {
  const t = text.trim();
  if (t === "") return undefined;
  if (!(opts.integer ? INTEGER : NUMBER).test(t)) {
    errors[field] = opts.integer ? "a whole number" : "a number";
    return undefined;
  }
  const n = Number(t);
  if (n < opts.min || (opts.max !== undefined && n > opts.max)) {
    errors[field] = opts.max === undefined ? `at least ${opts.min}` : `from ${opts.min} to ${opts.max}`;
    return undefined;
  }
  return n;
}

/** The strategy and deadline of the form; errors by field name. */
export function strategyBody(form: StrategyForm, errors: Errors): { strategy?: Strategy; deadline_s: number } {
  const strategy: Strategy = {};
  const batch = number(errors, "batch", form.batch, {
    integer: true,
    min: 1,
    ...(form.batchBy === "percent" ? { max: 100 } : {}),
  });
  if (batch !== undefined) {
    if (form.batchBy === "percent") strategy.batch_percent = batch;
    else strategy.batch_size = batch;
  }
  const pause = number(errors, "pause", form.pause, { min: 0, max: WEEK_S });
  if (pause !== undefined) strategy.pause_s = pause;
  const gate = number(errors, "healthGate", form.healthGate, { min: 0, max: WEEK_S });
  if (gate !== undefined) strategy.health_gate_s = gate;
  const failures = number(errors, "maxFailures", form.maxFailures, { integer: true, min: 0 });
  if (failures !== undefined) strategy.max_failures = failures;
  const timeout = number(errors, "hostTimeout", form.hostTimeout, { min: 0.001, max: WEEK_S });
  if (timeout !== undefined) strategy.host_timeout_s = timeout;
  const deadline = number(errors, "deadline", form.deadline, { min: 0.001, max: WEEK_S }) ?? 600;
  return Object.keys(strategy).length ? { strategy, deadline_s: deadline } : { deadline_s: deadline };
}

function fullMatch(pattern: string, value: string): boolean | null {
  try {
    return new RegExp(`^(?:${pattern})$`, "u").test(value);
  } catch {
    return null; // a Python pattern JavaScript cannot read: the server checks it
  }
}

/** A command's parameter values, as typed values; errors by `param.<name>`. */
export function paramValues(
  specs: ParamSpec[],
  raw: Record<string, string | boolean>,
  errors: Errors,
): Record<string, ParamValue> {
  const out: Record<string, ParamValue> = {};
  for (const spec of specs) {
    const field = `param.${spec.name}`;
    const value = raw[spec.name];
    if (spec.type === "boolean") {
      if (typeof value === "boolean") out[spec.name] = value;
      else if (spec.required && spec.default === null) errors[field] = "required";
      continue;
    }
    const text = typeof value === "string" ? value.trim() : "";
    if (text === "") {
      if (spec.required && spec.default === null) errors[field] = "required";
      continue;
    }
    if (spec.type === "integer") {
      const n = INTEGER.test(text) ? Number(text) : NaN;
      if (Number.isNaN(n)) errors[field] = "a whole number";
      else if (spec.minimum !== null && n < spec.minimum) errors[field] = `at least ${spec.minimum}`;
      else if (spec.maximum !== null && n > spec.maximum) errors[field] = `at most ${spec.maximum}`;
      else out[spec.name] = n;
    } else if (spec.type === "choice") {
      if (spec.choices && !spec.choices.includes(text)) errors[field] = `one of ${spec.choices.join(", ")}`;
      else out[spec.name] = text;
    } else {
      if (spec.pattern && fullMatch(spec.pattern, text) === false) errors[field] = `must match ${spec.pattern}`;
      else out[spec.name] = text;
    }
  }
  return out;
}

/** The request of the form, or the errors that keep it from being sent. */
export function actionBody(form: ActionForm): Checked {
  const errors: Errors = {};
  const body: ActionBody = { application: form.application, kind: form.kind, deadline_s: 600 };
  if (form.kind === "command") {
    if (!form.command) errors.command = "choose a command";
    else body.command = form.command;
    const params = paramValues(form.paramSpecs, form.params, errors);
    if (Object.keys(params).length) body.params = params;
    if (form.services.length) errors.services = "a command runs once on each host, not on a service: clear the service selection";
  } else if (form.services.length === 1) {
    body.service = form.services[0] as string;
  } else if (form.services.length > 1 && form.services.length < form.allServices.length) {
    errors.services = "an action is for one service or for all of them: select one, or none";
  }
  if (form.hosts.length) body.hosts = [...form.hosts].sort();
  const { strategy, deadline_s } = strategyBody(form.strategy, errors);
  if (strategy) body.strategy = strategy;
  body.deadline_s = deadline_s;
  return { body: Object.keys(errors).length ? null : body, errors };
}

/** The plan request (POST /actions/plan takes the target, not the kind or command). */
export function planBody(body: ActionBody): Omit<ActionBody, "kind" | "command" | "params"> {
  const { kind: _kind, command: _command, params: _params, ...target } = body;
  return target;
}

/** What identifies a plan request of `body` (null: no request), to match an answer to its form. */
export function planKey(body: ActionBody | null): string | null {
  return body ? JSON.stringify(planBody(body)) : null;
}

/** The initial values of a command's form: each parameter's default. */
export function defaultParams(specs: ParamSpec[]): Record<string, string | boolean> {
  const out: Record<string, string | boolean> = {};
  for (const s of specs) {
    if (s.type === "boolean") out[s.name] = s.default === true;
    else out[s.name] = s.default === null || s.default === undefined ? "" : String(s.default);
  }
  return out;
}

/** What the action reaches, in words (no host selected: every host of the application). */
export function describeTarget(application: string, kind: ActionKind, command: string, services: string[], allServices: number, hosts: string[]): string {
  const what = kind === "command" ? `run ${command || "a command"}` : kind;
  const on = kind === "command" ? "" : services.length === 0 || services.length === allServices ? " every service" : ` ${services.join(", ")}`;
  const where = hosts.length ? ` on ${hosts.length} selected ${hosts.length === 1 ? "host" : "hosts"}` : ` on every host of ${application}`;
  return `${what}${on}${where}`;
}
