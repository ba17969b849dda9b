import { describe, expect, it } from "vitest";
import { focusHeading, matchRoute, safeNext } from "./router";

describe("matchRoute", () => {
  it("matches literal and parameter segments", () => {
    expect(matchRoute("/", "/")).toEqual({});
    expect(matchRoute("/apps/:name", "/apps/shop")).toEqual({ name: "shop" });
    expect(matchRoute("/actions/:id", "/actions/abc/")).toEqual({ id: "abc" });
    expect(matchRoute("/hosts/:host", "/hosts/web%2D1")).toEqual({ host: "web-1" });
  });
  it("refuses other shapes", () => {
    expect(matchRoute("/apps/:name", "/apps")).toBeNull();
    expect(matchRoute("/apps/:name", "/hosts/x")).toBeNull();
    expect(matchRoute("/hosts", "/hosts/x")).toBeNull();
  });
});

describe("safeNext", () => {
  const o = "https://drover.example";
  it("keeps paths of this site and refuses anything else", () => {
    expect(safeNext("/apps/shop?q=1", o)).toBe("/apps/shop?q=1");
    expect(safeNext("//evil.example", o)).toBe("/");
    expect(safeNext("https://evil.example", o)).toBe("/");
    expect(safeNext("/\\evil.example", o)).toBe("/");
    expect(safeNext("/\t/evil.example", o)).toBe("/");
    expect(safeNext("/login?next=/x", o)).toBe("/");
    expect(safeNext("/./login", o)).toBe("/");
    expect(safeNext("relative", o)).toBe("/");
    expect(safeNext(null, o)).toBe("/");
  });
});

describe("focusHeading", () => {
  it("focuses the main heading, making it focusable first", () => {
    const attrs = new Map<string, string>();
    let focused = false;
    const h1 = {
      hasAttribute: (n: string) => attrs.has(n),
      setAttribute: (n: string, v: string) => attrs.set(n, v),
      focus: () => (focused = true),
    };
    const asked: string[] = [];
    const root = { querySelector: (sel: string) => (asked.push(sel), h1) } as unknown as ParentNode;
    expect(focusHeading(root)).toBe(true);
    expect(asked).toEqual(["main h1"]);
    expect(attrs.get("tabindex")).toBe("-1");
    expect(focused).toBe(true);
    expect(focusHeading({ querySelector: () => null } as unknown as ParentNode)).toBe(false);
  });
});
