/** An answer of the API that is not a success, with the text to show for it. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly detail: string,
  ) {
    super(detail);
    this.name = "ApiError";
  }
}

interface Loc {
  loc?: unknown[];
  msg?: string;
}

/** The text of an error body: `{"detail": "..."}`, or FastAPI's 422 list of `{loc, msg}`. */
export function detailText(body: unknown, status: number, statusText = ""): string {
  const detail = (body as { detail?: unknown } | null)?.detail;
  if (typeof detail === "string" && detail) return detail;
  if (Array.isArray(detail) && detail.length) {
    return detail
      .map((item: Loc) => {
        const where = (item.loc ?? []).filter((p) => p !== "body").join(".");
        return where ? `${where}: ${item.msg ?? ""}` : String(item.msg ?? "");
      })
      .join("; ");
  }
  return `HTTP ${status}${statusText ? ` ${statusText}` : ""}`;
}

/** What to show for anything thrown while talking to the server. */
export function errorText(err: unknown): string {
  if (err instanceof ApiError) return err.detail;
  if (err instanceof Error) return err.message || String(err);
  return String(err);
}
