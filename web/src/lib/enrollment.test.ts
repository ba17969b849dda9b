import { describe, expect, it } from "vitest";
import type { EnrollmentToken, HostKey, Whoami } from "../api/types";
import {
  DEFAULT_EXPIRY_S,
  enrollCommand,
  EXPIRY_CHOICES,
  hostProblem,
  MAX_EXPIRY_S,
  mayEnroll,
  recentTokens,
  revokedText,
  shellWord,
  sortPending,
  tokenBody,
  tokenState,
  tokenStateText,
} from "./enrollment";

const now = Date.parse("2026-01-01T12:00:00Z");

const token = (id: string, change: Partial<EnrollmentToken> = {}): EnrollmentToken => ({
  id,
  created_by: "ada",
  created_at: "2026-01-01T11:00:00Z",
  expires_at: "2026-01-01T12:50:00Z",
  host: null,
  used_at: null,
  used_by_host: null,
  ...change,
});

const key = (host: string, state: HostKey["state"], requested_at: string): HostKey => ({
  host, public_key: `U${host}`, state, requested_at, source: "10.0.0.9", via: "",
  decided_at: null, decided_by: null, revoked_at: null, revoked_by: null,
});

describe("mayEnroll", () => {
  const who = (grants: Whoami["grants"]): Whoami => ({ name: "u", groups: [], grants, via: "session" });
  it("is for admins of the whole fleet only", () => {
    expect(mayEnroll(who([{ role: "admin", applications: [], environments: [] }]))).toBe(true);
    expect(mayEnroll(who([{ role: "admin", applications: ["*"], environments: ["*"] }]))).toBe(true);
    expect(mayEnroll(who([{ role: "admin", applications: ["shop"], environments: [] }]))).toBe(false);
    expect(mayEnroll(who([{ role: "operator", applications: [], environments: [] }]))).toBe(false);
    expect(mayEnroll(who([{ role: "approver", applications: [], environments: [] }]))).toBe(false);
    expect(mayEnroll(null)).toBe(false);
  });
});

describe("tokenState", () => {
  it("is used once a host enrolled with it, expired or not", () => {
    expect(tokenState(token("t", { used_at: "2026-01-01T11:57:00Z", used_by_host: "web-7" }), now)).toBe("used");
    expect(tokenState(token("t", { used_at: "2026-01-01T10:00:00Z", expires_at: "2026-01-01T11:00:00Z" }), now)).toBe("used");
  });
  it("is expired from its expiry on, and unused before", () => {
    expect(tokenState(token("t", { expires_at: "2026-01-01T12:00:00Z" }), now)).toBe("expired");
    expect(tokenState(token("t", { expires_at: "2026-01-01T12:00:01Z" }), now)).toBe("unused");
  });
});

describe("tokenStateText", () => {
  it("says by whom and when, or when it expires", () => {
    expect(tokenStateText(token("t", { used_at: "2026-01-01T11:57:00Z", used_by_host: "web-7" }), now)).toBe("used by web-7 3 min ago");
    expect(tokenStateText(token("t", { expires_at: "2026-01-01T10:00:00Z" }), now)).toBe("expired 2 h ago");
    expect(tokenStateText(token("t"), now)).toBe("unused, expires in 50 min");
  });
});

describe("expiry choices", () => {
  it("go from minutes to the server's most, the default among them", () => {
    const seconds = EXPIRY_CHOICES.map(([s]) => s);
    expect(EXPIRY_CHOICES.map(([, label]) => label)).toEqual(["15 min", "1 h", "1 day", "7 days"]);
    expect(seconds).toContain(DEFAULT_EXPIRY_S);
    expect(Math.max(...seconds)).toBe(MAX_EXPIRY_S);
    expect(MAX_EXPIRY_S).toBe(604800);
  });
});

describe("tokenBody", () => {
  it("sends the expiry and, when given, the host", () => {
    expect(tokenBody({ host: "", expiry: "900" })).toEqual({ body: { expires_in_s: 900 }, errors: {} });
    expect(tokenBody({ host: " web-7 ", expiry: "3600" })).toEqual({ body: { expires_in_s: 3600, host: "web-7" }, errors: {} });
  });
  it("refuses a host that is not a host id and an expiry out of range", () => {
    const bad = tokenBody({ host: "web 7", expiry: "604801" });
    expect(bad.body).toBeNull();
    expect(Object.keys(bad.errors).sort()).toEqual(["expiry", "host"]);
    expect(tokenBody({ host: "", expiry: "" }).errors.expiry).toBeTruthy();
  });
});

describe("hostProblem", () => {
  it("accepts no host and host ids", () => {
    expect(hostProblem("")).toBeNull();
    expect(hostProblem("web-7")).toBeNull();
    expect(hostProblem("a_b9")).toBeNull();
  });
  it("refuses what the server would", () => {
    expect(hostProblem("-web")).not.toBeNull();
    expect(hostProblem("web.example.com")).not.toBeNull();
    expect(hostProblem("x".repeat(64))).not.toBeNull();
  });
});

describe("enrollCommand", () => {
  it("is the line the host runs, naming the host of a token for one host", () => {
    expect(enrollCommand("https://drover.example:8443", "dre_abc-DEF_1")).toBe("drover agent enroll --server https://drover.example:8443 --token dre_abc-DEF_1");
    expect(enrollCommand("http://127.0.0.1:8080", "s", "web-7")).toBe("drover agent enroll --server http://127.0.0.1:8080 --token s --host-id web-7");
  });
  it("quotes only what a shell would misread", () => {
    expect(shellWord("plain-word_1")).toBe("plain-word_1");
    expect(shellWord("a b")).toBe("'a b'");
    expect(shellWord("it's")).toBe(`'it'"'"'s'`);
  });
});

describe("recentTokens", () => {
  it("shows the newest and counts the rest", () => {
    const list = [token("a", { created_at: "2026-01-01T10:00:00Z" }), token("c", { created_at: "2026-01-01T11:30:00Z" }), token("b", { created_at: "2026-01-01T11:00:00Z" })];
    const { shown, more } = recentTokens(list, 2);
    expect(shown.map((t) => t.id)).toEqual(["c", "b"]);
    expect(more).toBe(1);
    expect(recentTokens(list, 5).more).toBe(0);
  });
});

describe("sortPending", () => {
  it("keeps only waiting requests, the longest waiting first", () => {
    const keys = [key("web-2", "pending", "2026-01-01T11:00:00Z"), key("web-1", "enrolled", "2026-01-01T09:00:00Z"), key("web-3", "pending", "2026-01-01T10:00:00Z")];
    expect(sortPending(keys).map((k) => k.host)).toEqual(["web-3", "web-2"]);
  });
});

describe("revokedText", () => {
  it("counts the keys and says the host must enroll again", () => {
    expect(revokedText({ host: "web-7", revoked_keys: ["UA"] })).toBe("web-7: 1 key revoked; the host is cut off the bus and must enroll again.");
  });
});
