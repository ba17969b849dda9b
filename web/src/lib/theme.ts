export type Theme = "light" | "dark";
export const THEME_KEY = "drover-theme";

/** The stored choice if there is one, else what the system prefers. */
export function initialTheme(stored: string | null, prefersDark: boolean): Theme {
  if (stored === "light" || stored === "dark") return stored;
  return prefersDark ? "dark" : "light";
}

export function readTheme(): Theme {
  let stored: string | null = null;
  try {
    stored = localStorage.getItem(THEME_KEY);
  } catch {
    // storage may be off: the system's preference it is
  }
  return initialTheme(stored, matchMedia("(prefers-color-scheme: dark)").matches);
}

export function applyTheme(theme: Theme, persist: boolean): void {
  document.documentElement.dataset.theme = theme;
  if (!persist) return;
  try {
    localStorage.setItem(THEME_KEY, theme);
  } catch {
    // not kept: it still applies to this page
  }
}
