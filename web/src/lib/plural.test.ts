import { describe, expect, it } from "vitest";
import { noun, plural } from "./plural";

describe("plural", () => {
  it("uses the singular for exactly one", () => {
    expect(plural(1, "host")).toBe("1 host");
    expect(noun(1, "service")).toBe("service");
  });

  it("uses the plural otherwise, with grouped digits", () => {
    expect(plural(0, "host")).toBe("0 hosts");
    expect(plural(2, "service")).toBe("2 services");
    expect(plural(10000, "host")).toBe("10,000 hosts");
    expect(noun(3, "host")).toBe("hosts");
  });

  it("takes an irregular plural", () => {
    expect(plural(1, "batch", "batches")).toBe("1 batch");
    expect(plural(2, "batch", "batches")).toBe("2 batches");
  });
});
