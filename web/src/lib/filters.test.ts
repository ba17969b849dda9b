import { describe, expect, it } from "vitest";
import { labelProblem, parseLabels, readFilters, remember, trimmed, writeFilters } from "./filters";

const defaults = { q: "", status: "", owner: "", label: "" };

describe("filters in the query string", () => {
  it("reads what is there and keeps defaults for the rest", () => {
    expect(readFilters("?q=shop&status=drifted&other=x", defaults)).toEqual({
      q: "shop",
      status: "drifted",
      owner: "",
      label: "",
    });
  });

  it("writes only what differs from the default, in a stable order", () => {
    expect(writeFilters({ label: "env=prod,tier=web", q: "sh op", status: "", owner: "" }, defaults)).toBe(
      "?q=sh+op&label=env%3Dprod%2Ctier%3Dweb",
    );
    expect(writeFilters(defaults, defaults)).toBe("");
  });

  it("keeps blanks as typed, so a search for two words keeps its space", () => {
    const typed = { ...defaults, q: "web " };
    expect(readFilters(writeFilters(typed, defaults), defaults)).toEqual(typed);
    expect(readFilters(writeFilters({ ...defaults, q: "web shop" }, defaults), defaults).q).toBe("web shop");
  });

  it("trims only what is sent", () => {
    expect(trimmed({ q: " web shop ", status: "", limit: "50" })).toEqual({ q: "web shop", status: "", limit: "50" });
  });

  it("round-trips through the query string", () => {
    const values = { q: "a&b=c", status: "failed", owner: "team-shop", label: "k=v" };
    expect(readFilters(writeFilters(values, defaults), defaults)).toEqual(values);
  });

  it("keeps a non-empty default unless another value is given", () => {
    const d = { limit: "100", kind: "" };
    expect(readFilters("", d)).toEqual({ limit: "100", kind: "" });
    expect(writeFilters({ limit: "50", kind: "" }, d)).toBe("?limit=50");
  });
});

describe("label filters", () => {
  it("parses k=v pairs, trimming blanks", () => {
    expect(parseLabels(" env=prod , tier=web,")).toEqual({ env: "prod", tier: "web" });
    expect(parseLabels("")).toEqual({});
    expect(parseLabels("url=a=b")).toEqual({ url: "a=b" });
  });

  it("says which part is not k=v", () => {
    expect(labelProblem("env=prod,oops")).toBe('label filter "oops": write key=value');
    expect(labelProblem("=x")).not.toBeNull();
    expect(labelProblem("a=1")).toBeNull();
  });
});

describe("remember", () => {
  it("keeps every value seen, sorted, without blanks", () => {
    const seen = new Set<string>();
    expect(remember(seen, ["prod", "dev"])).toEqual(["dev", "prod"]);
    expect(remember(seen, ["staging", ""])).toEqual(["dev", "prod", "staging"]);
    expect(remember(seen, [])).toEqual(["dev", "prod", "staging"]);
  });
});
