// Host enrollment as the GUI shows it: the state of one-time tokens, the expiry choices of a new
// one, the command a host runs with it, and the requests waiting for an admin's approval.
import type { EnrollmentToken, HostKey, Revoked, Whoami } from "../api/types";
import { may } from "./permissions";
import { plural } from "./plural";
import { relative } from "./time";

/** Whether `who` may see and decide enrollments: admin on the whole fleet, as the server asks
 * (an admin grant scoped to some applications is not enough). */
export function mayEnroll(who: Whoami | null): boolean {
  return may(who, "admin");
}

/** How long a new token may be used, as the form offers it (the server allows up to 7 days). */
export const EXPIRY_CHOICES: readonly (readonly [seconds: number, label: string])[] = [
  [15 * 60, "15 min"],
  [60 * 60, "1 h"],
  [24 * 60 * 60, "1 day"],
  [7 * 24 * 60 * 60, "7 days"],
];
export const DEFAULT_EXPIRY_S = 60 * 60;
export const MAX_EXPIRY_S = 7 * 24 * 60 * 60;

/** As src/drover/model/names.py's HOST_ID_PATTERN. */
const HOST_ID = /^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$/;

export type TokenState = "used" | "expired" | "unused";

/** A token is used once it enrolled a host (whether or not it has expired since). */
export function tokenState(token: EnrollmentToken, now: number): TokenState {
  if (token.used_at) return "used";
  const expires = Date.parse(token.expires_at);
  return !Number.isNaN(expires) && expires <= now ? "expired" : "unused";
}

/** `used by web-7 3 min ago`, `expired 2 h ago`, `unused, expires in 50 min`. */
export function tokenStateText(token: EnrollmentToken, now: number): string {
  switch (tokenState(token, now)) {
    case "used":
      return `used${token.used_by_host ? ` by ${token.used_by_host}` : ""} ${relative(token.used_at, now)}`;
    case "expired":
      return `expired ${relative(token.expires_at, now)}`;
    case "unused":
      return `unused, expires ${relative(token.expires_at, now)}`;
  }
}

/** What is wrong with the host a token is for; null: nothing (empty: any host). */
export function hostProblem(host: string): string | null {
  const h = host.trim();
  if (!h || HOST_ID.test(h)) return null;
  return "a host id: letters, digits, - and _ (up to 63), starting with a letter or digit";
}

export interface TokenForm {
  host: string;
  /** Seconds, as the select's value. */
  expiry: string;
}

export interface TokenBody {
  expires_in_s: number;
  host?: string;
}

/** The body of POST /api/v1/enrollment-tokens, or the problems of the form. */
export function tokenBody(form: TokenForm): { body: TokenBody | null; errors: Partial<Record<keyof TokenForm, string>> } {
  const errors: Partial<Record<keyof TokenForm, string>> = {};
  const hostError = hostProblem(form.host);
  if (hostError) errors.host = hostError;
  const seconds = Number(form.expiry);
  if (!Number.isInteger(seconds) || seconds <= 0 || seconds > MAX_EXPIRY_S) errors.expiry = "choose how long the token may be used";
  if (Object.keys(errors).length) return { body: null, errors };
  const host = form.host.trim();
  return { body: host ? { expires_in_s: seconds, host } : { expires_in_s: seconds }, errors };
}

/** An argument as a POSIX shell reads it: quoted only when it has to be. */
export function shellWord(word: string): string {
  if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(word)) return word;
  return `'${word.replace(/'/g, `'"'"'`)}'`;
}

/** What the host runs to enroll with `secret`; a token for one host names it (the default is
 * the host's short name, which may not be the host id the token is for). */
export function enrollCommand(origin: string, secret: string, host?: string | null): string {
  const argv = ["drover", "agent", "enroll", "--server", origin, "--token", secret];
  if (host) argv.push("--host-id", host);
  return argv.map(shellWord).join(" ");
}

/** The newest `n` tokens, and how many older ones are left out. */
export function recentTokens(tokens: EnrollmentToken[], n: number): { shown: EnrollmentToken[]; more: number } {
  const newest = [...tokens].sort((a, b) => b.created_at.localeCompare(a.created_at));
  return { shown: newest.slice(0, n), more: Math.max(0, newest.length - n) };
}

/** Requests waiting for approval, the oldest first (it has waited longest). */
export function sortPending(keys: HostKey[]): HostKey[] {
  return keys
    .filter((k) => k.state === "pending")
    .sort((a, b) => a.requested_at.localeCompare(b.requested_at) || a.host.localeCompare(b.host));
}

/** Where a request came from: its address, or a dash. */
export function sourceText(key: HostKey): string {
  return key.source || "—";
}

/** What a revocation did, as the host page says it. */
export function revokedText(answer: Revoked): string {
  return `${answer.host}: ${plural(answer.revoked_keys.length, "key")} revoked; the host is cut off the bus and must enroll again.`;
}
