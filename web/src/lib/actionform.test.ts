import { describe, expect, it } from "vitest";
import type { ParamSpec } from "../api/types";
import { actionBody, DEFAULT_STRATEGY, defaultParams, describeTarget, paramValues, planBody, planKey, type ActionForm, type Errors } from "./actionform";

const form = (over: Partial<ActionForm> = {}): ActionForm => ({
  application: "shop",
  kind: "restart",
  command: "",
  params: {},
  paramSpecs: [],
  services: [],
  allServices: ["web", "worker"],
  hosts: [],
  strategy: { ...DEFAULT_STRATEGY },
  ...over,
});

const spec = (over: Partial<ParamSpec>): ParamSpec => ({
  name: "p",
  type: "string",
  description: "",
  required: false,
  default: null,
  minimum: null,
  maximum: null,
  choices: null,
  pattern: null,
  ...over,
});

describe("actionBody", () => {
  it("targets the whole application when nothing is selected", () => {
    expect(actionBody(form())).toEqual({ body: { application: "shop", kind: "restart", deadline_s: 600 }, errors: {} });
  });

  it("takes one selected service and the selected hosts, in name order, with batches", () => {
    const checked = actionBody(
      form({ services: ["web"], hosts: ["vm-b", "vm-a"], strategy: { ...DEFAULT_STRATEGY, batch: "1", pause: "2.5", healthGate: "5", maxFailures: "0", hostTimeout: "30", deadline: "900" } }),
    );
    expect(checked.body).toEqual({
      application: "shop",
      kind: "restart",
      service: "web",
      hosts: ["vm-a", "vm-b"],
      strategy: { batch_size: 1, pause_s: 2.5, health_gate_s: 5, max_failures: 0, host_timeout_s: 30 },
      deadline_s: 900,
    });
  });

  it("reads every selected service as the whole application", () => {
    expect(actionBody(form({ services: ["web", "worker"] })).body?.service).toBeUndefined();
  });

  it("refuses some but not all of several services", () => {
    const three = form({ services: ["a", "b"], allServices: ["a", "b", "c"] });
    expect(actionBody(three).body).toBeNull();
    expect(actionBody(three).errors.services).toMatch(/one service or for all/);
  });

  it("sends a batch percentage and checks its range", () => {
    expect(actionBody(form({ strategy: { ...DEFAULT_STRATEGY, batchBy: "percent", batch: "25" } })).body?.strategy).toEqual({ batch_percent: 25 });
    expect(actionBody(form({ strategy: { ...DEFAULT_STRATEGY, batchBy: "percent", batch: "101" } })).errors).toEqual({ batch: "from 1 to 100" });
  });

  it("says what is wrong with each strategy field", () => {
    const bad = { ...DEFAULT_STRATEGY, batch: "0", pause: "-1", healthGate: "x", maxFailures: "1.5", hostTimeout: "0", deadline: "700000" };
    expect(actionBody(form({ strategy: bad })).errors).toEqual({
      batch: "at least 1",
      pause: "from 0 to 604800",
      healthGate: "a number",
      maxFailures: "a whole number",
      hostTimeout: "from 0.001 to 604800",
      deadline: "from 0.001 to 604800",
    });
  });

  it("builds a command with typed parameters and no service", () => {
    const specs = [spec({ name: "count", type: "integer", minimum: 1, maximum: 60, default: 5 }), spec({ name: "dir", type: "choice", choices: ["/tmp", "/var/tmp"], default: "/tmp" })];
    const checked = actionBody(form({ kind: "command", command: "count-orders", paramSpecs: specs, params: { count: "3", dir: "/var/tmp" } }));
    expect(checked.body).toEqual({ application: "shop", kind: "command", command: "count-orders", params: { count: 3, dir: "/var/tmp" }, deadline_s: 600 });
    expect(actionBody(form({ kind: "command", command: "", services: ["web"] })).errors).toEqual({
      command: "choose a command",
      services: "a command runs once on each host, not on a service: clear the service selection",
    });
  });

  it("leaves kind and command out of a plan", () => {
    const body = actionBody(form({ kind: "command", command: "c", hosts: ["h"] })).body;
    expect(body && planBody(body)).toEqual({ application: "shop", hosts: ["h"], deadline_s: 600 });
  });
});

describe("paramValues", () => {
  const check = (specs: ParamSpec[], raw: Record<string, string | boolean>) => {
    const errors: Errors = {};
    const values = paramValues(specs, raw, errors);
    return { values, errors };
  };

  it("checks integer bounds", () => {
    const s = [spec({ name: "n", type: "integer", minimum: 1, maximum: 10 })];
    expect(check(s, { n: "0" }).errors).toEqual({ "param.n": "at least 1" });
    expect(check(s, { n: "11" }).errors).toEqual({ "param.n": "at most 10" });
    expect(check(s, { n: "2.5" }).errors).toEqual({ "param.n": "a whole number" });
    expect(check(s, { n: " 7 " }).values).toEqual({ n: 7 });
  });

  it("requires a required parameter without default, and leaves an empty one with a default to the server", () => {
    expect(check([spec({ name: "r", required: true })], { r: "" }).errors).toEqual({ "param.r": "required" });
    expect(check([spec({ name: "d", default: "x" })], { d: "" })).toEqual({ values: {}, errors: {} });
  });

  it("matches a string's pattern against the whole value", () => {
    const s = [spec({ name: "region", pattern: "[a-z]+" })];
    expect(check(s, { region: "eu1" }).errors).toEqual({ "param.region": "must match [a-z]+" });
    expect(check(s, { region: "eu" }).values).toEqual({ region: "eu" });
  });

  it("sends booleans as booleans and checks choices", () => {
    const s = [spec({ name: "force", type: "boolean", default: false }), spec({ name: "c", type: "choice", choices: ["a", "b"] })];
    expect(check(s, { force: true, c: "z" })).toEqual({ values: { force: true }, errors: { "param.c": "one of a, b" } });
  });

  it("starts from the defaults", () => {
    expect(defaultParams([spec({ name: "n", type: "integer", default: 5 }), spec({ name: "f", type: "boolean", default: true }), spec({ name: "s" })])).toEqual({ n: "5", f: true, s: "" });
  });
});

describe("planKey", () => {
  it("is the plan request, so an answer for another selection does not match", () => {
    const one = actionBody(form({ hosts: ["h1"] })).body;
    const two = actionBody(form({ hosts: ["h1", "h2"] })).body;
    expect(planKey(one)).toBe(planKey(actionBody(form({ hosts: ["h1"] })).body));
    expect(planKey(one)).not.toBe(planKey(two));
    expect(planKey(null)).toBeNull();
  });
});

describe("describeTarget", () => {
  it("names the application when no host is selected", () => {
    expect(describeTarget("shop", "restart", "", [], 2, [])).toBe("restart every service on every host of shop");
    expect(describeTarget("shop", "stop", "", ["web"], 2, ["h1"])).toBe("stop web on 1 selected host");
    expect(describeTarget("shop", "command", "migrate", [], 2, ["h1", "h2"])).toBe("run migrate on 2 selected hosts");
  });
});
