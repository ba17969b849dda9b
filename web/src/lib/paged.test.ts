import { describe, expect, it } from "vitest";
import { PageLoads } from "./paged";

describe("PageLoads", () => {
  it("lets only the latest request of a page count, and end the loading", () => {
    const loads = new PageLoads();
    const first = loads.begin(0);
    const second = loads.begin(0);
    expect(loads.has(0)).toBe(true);
    expect(loads.current(0, first)).toBe(false);
    expect(loads.current(0, second)).toBe(true);
    loads.end(0, first); // the older one ends: the newer is still in flight
    expect(loads.has(0)).toBe(true);
    loads.end(0, second);
    expect(loads.has(0)).toBe(false);
  });

  it("keeps pages apart", () => {
    const loads = new PageLoads();
    const a = loads.begin(0);
    const b = loads.begin(1);
    expect(loads.current(0, a) && loads.current(1, b)).toBe(true);
    loads.end(1, b);
    expect(loads.has(0)).toBe(true);
    expect(loads.has(1)).toBe(false);
  });
});
