import { get } from "../api/client";
import type { ConfigOut, Problem } from "../api/types";
import { ErrorAlert } from "../components/ErrorAlert";
import { useNow, useTitle } from "../lib/hooks";
import { onTopics, useQuery } from "../lib/query";
import { absolute, relative } from "../lib/time";

export const problemText = (p: Problem) => `${p.file}:${p.line}:${p.column}: ${p.message}`;

export function ConfigPage() {
  useTitle("Config");
  const now = useNow();
  const q = useQuery<ConfigOut>("/api/v1/config", (s) => get("/api/v1/config", s), onTopics("config"));
  const c = q.data;
  return (
    <main id="main">
      <h1 tabIndex={-1}>Config</h1>
      <ErrorAlert errors={[q.error]} />
      {c && (
        <>
          <dl class="facts">
            <dt>Source</dt>
            <dd>
              <code>{c.source}</code>
            </dd>
            <dt>Active revision</dt>
            <dd>
              <code>{c.active_revision ?? "none"}</code>
            </dd>
            <dt>Active since</dt>
            <dd title={absolute(c.active_since)}>{relative(c.active_since, now)}</dd>
          </dl>
          <section>
            <h2>Last error</h2>
            {c.last_error ? (
              <div class="card problem" data-testid="config-error">
                <p>
                  <strong>{c.last_error.message}</strong>
                  {c.last_error.revision && (
                    <>
                      {" "}
                      in <code>{c.last_error.revision}</code>
                    </>
                  )}{" "}
                  <span class="muted" title={absolute(c.last_error.at)}>
                    {relative(c.last_error.at, now)}
                  </span>
                </p>
                {c.last_error.problems.length > 0 && (
                  <ul class="problems">
                    {c.last_error.problems.map((p) => (
                      <li key={problemText(p)}>
                        <code>{problemText(p)}</code>
                      </li>
                    ))}
                  </ul>
                )}
                <p class="muted small">The last good revision stays active.</p>
              </div>
            ) : (
              <p class="muted">None: the latest revision is active.</p>
            )}
          </section>
          <section>
            <h2>Discovery problems</h2>
            {c.discovery_problems.length ? (
              <ul class="problems">
                {c.discovery_problems.map((p) => (
                  <li key={problemText(p)}>
                    <code>{problemText(p)}</code>
                  </li>
                ))}
              </ul>
            ) : (
              <p class="muted">None.</p>
            )}
          </section>
        </>
      )}
    </main>
  );
}
