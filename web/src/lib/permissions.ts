// Who may do what, as src/drover/model/access.py decides it; the GUI uses it only to hide what
// the server would refuse (the server decides, every time).
import type { GrantIO, RoleName, Whoami } from "../api/types";

export type Permission = "read" | "act" | "approve" | "audit" | "admin";

export const ROLE_PERMISSIONS: Record<RoleName, readonly Permission[]> = {
  viewer: ["read"],
  operator: ["read", "act"],
  approver: ["read", "approve", "audit"],
  admin: ["read", "act", "approve", "audit", "admin"],
};

const globCache = new Map<string, RegExp>();

/** Python's `fnmatchcase`: `*`, `?`, `[seq]`, `[!seq]`, case-sensitive, the whole name. */
export function globToRegExp(glob: string): RegExp {
  const cached = globCache.get(glob);
  if (cached) return cached;
  let out = "";
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i] as string;
    if (c === "*") out += ".*";
    else if (c === "?") out += ".";
    else if (c === "[") {
      const close = glob.indexOf("]", i + 2);
      if (close < 0) {
        out += "\\[";
        continue;
      }
      let set = glob.slice(i + 1, close);
      const negate = set.startsWith("!");
      if (negate) set = set.slice(1);
      out += `[${negate ? "^" : ""}${set.replace(/[\\^\]]/g, "\\$&")}]`;
      i = close;
    } else out += c.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
  }
  const re = new RegExp(`^${out}$`, "s");
  globCache.set(glob, re);
  return re;
}

export function globMatch(glob: string, name: string): boolean {
  return globToRegExp(glob).test(name);
}

const isEverywhere = (globs: string[]): boolean =>
  globs.length === 0 || (globs.length === 1 && globs[0] === "*");

export function unscoped(grant: GrantIO): boolean {
  return isEverywhere(grant.applications) && isEverywhere(grant.environments);
}

/**
 * Whether `grant` covers `application` in `environment`. No application: only an unscoped
 * grant does. An environment not known to the GUI (`undefined`) is not checked: the button is
 * shown and the server has the last word. `null` (unknown to the server too) is covered only by
 * a grant for every environment, as on the server.
 */
export function covers(
  grant: GrantIO,
  application: string | null,
  environment?: string | null,
): boolean {
  if (application === null) return unscoped(grant);
  const apps = grant.applications.length ? grant.applications : ["*"];
  if (!apps.some((g) => globMatch(g, application))) return false;
  if (environment === undefined) return true;
  const envs = grant.environments.length ? grant.environments : ["*"];
  if (environment === null) return envs.includes("*");
  return envs.some((g) => globMatch(g, environment));
}

export function may(
  who: Whoami | null,
  permission: Permission,
  application: string | null = null,
  environment?: string | null,
): boolean {
  if (!who) return false;
  return who.grants.some(
    (g) => ROLE_PERMISSIONS[g.role]?.includes(permission) && covers(g, application, environment),
  );
}

/** Whether any grant carries `permission`, whatever its scope. */
export function maySomewhere(who: Whoami | null, permission: Permission): boolean {
  return !!who && who.grants.some((g) => ROLE_PERMISSIONS[g.role]?.includes(permission));
}
