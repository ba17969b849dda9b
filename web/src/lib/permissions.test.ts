import { describe, expect, it } from "vitest";
import type { Whoami } from "../api/types";
import { globMatch, may, maySomewhere } from "./permissions";

const who = (grants: Whoami["grants"]): Whoami => ({ name: "u", groups: [], grants, via: "session" });

describe("globMatch follows fnmatchcase", () => {
  it("matches stars, question marks and sets on the whole name", () => {
    expect(globMatch("shop-*", "shop-eu")).toBe(true);
    expect(globMatch("shop-*", "myshop-eu")).toBe(false);
    expect(globMatch("sho?", "shop")).toBe(true);
    expect(globMatch("[ab]x", "bx")).toBe(true);
    expect(globMatch("[!ab]x", "bx")).toBe(false);
    expect(globMatch("a.b", "axb")).toBe(false);
    expect(globMatch("Shop", "shop")).toBe(false);
  });
});

describe("may", () => {
  const operatorShopStaging = who([{ role: "operator", applications: ["shop"], environments: ["staging"] }]);

  it("lets an operator act on the application in its environment only", () => {
    expect(may(operatorShopStaging, "act", "shop", "staging")).toBe(true);
    expect(may(operatorShopStaging, "act", "shop", "prod")).toBe(false);
    expect(may(operatorShopStaging, "act", "billing", "staging")).toBe(false);
    expect(may(operatorShopStaging, "approve", "shop", "staging")).toBe(false);
  });

  it("does not let a scoped grant cover the whole fleet", () => {
    expect(may(operatorShopStaging, "read")).toBe(false);
    expect(may(who([{ role: "viewer", applications: ["*"], environments: ["*"] }]), "read")).toBe(true);
  });

  it("covers an unknown (null) environment only with a grant for every environment", () => {
    expect(may(operatorShopStaging, "act", "shop", null)).toBe(false);
    expect(may(who([{ role: "operator", applications: ["shop"], environments: ["*"] }]), "act", "shop", null)).toBe(true);
  });

  it("leaves an environment the GUI does not know to the server", () => {
    expect(may(operatorShopStaging, "act", "shop")).toBe(true);
  });

  it("gives approvers approve and audit but not act; admins everything", () => {
    const approver = who([{ role: "approver", applications: ["*"], environments: ["*"] }]);
    expect([may(approver, "approve", "shop", "dev"), may(approver, "audit"), may(approver, "act", "shop", "dev")]).toEqual([true, true, false]);
    const admin = who([{ role: "admin", applications: ["*"], environments: ["*"] }]);
    expect((["read", "act", "approve", "audit", "admin"] as const).map((p) => may(admin, p))).toEqual([true, true, true, true, true]);
  });

  it("treats an empty scope list as every", () => {
    expect(may(who([{ role: "viewer", applications: [], environments: [] }]), "read")).toBe(true);
  });

  it("says no for nobody", () => {
    expect(may(null, "read")).toBe(false);
    expect(maySomewhere(null, "read")).toBe(false);
    expect(maySomewhere(operatorShopStaging, "act")).toBe(true);
  });
});
