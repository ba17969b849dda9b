// The admin's part of a host's page: its bus keys, and cutting it off the bus.
import { useState } from "preact/hooks";
import { get, post } from "../api/client";
import { errorText } from "../api/errors";
import type { HostKey, Revoked } from "../api/types";
import { revokedText, sourceText } from "../lib/enrollment";
import { useNow } from "../lib/hooks";
import { useQuery } from "../lib/query";
import { absolute, relative } from "../lib/time";
import { ConfirmButton } from "./Confirm";
import { ErrorAlert } from "./ErrorAlert";

function decision(k: HostKey, now: number): string {
  if (k.revoked_at) return `revoked by ${k.revoked_by ?? "?"} ${relative(k.revoked_at, now)}`;
  if (k.decided_at) return `${k.state} by ${k.decided_by ?? "?"} ${relative(k.decided_at, now)}`;
  return "—";
}

export function HostCredentials({ host }: { host: string }) {
  const now = useNow();
  const path = encodeURIComponent(host);
  const keys = useQuery<HostKey[]>(`enrollments:${host}`, (s) => get(`/api/v1/enrollments?host=${path}`, s));
  const [result, setResult] = useState("");
  const [error, setError] = useState<string | null>(null);
  const enrolled = keys.data?.some((k) => k.state === "enrolled");

  const revoke = async () => {
    setError(null);
    setResult("");
    try {
      setResult(revokedText(await post<Revoked>(`/api/v1/hosts/${path}/revoke`)));
    } catch (err) {
      setError(errorText(err));
    }
    keys.refetch();
  };

  return (
    <section class="card credentials" aria-labelledby="credentials-title" data-testid="host-credentials">
      <h2 id="credentials-title">Bus credentials</h2>
      <ErrorAlert testid="revoke-error" errors={[keys.error, error]} />
      <p class="status-line" role="status" data-testid="revoke-result">
        {result}
      </p>
      {keys.data && keys.data.length === 0 && <p class="muted">The server knows no key of {host}: it did not enroll with this server.</p>}
      {keys.data && keys.data.length > 0 && (
        <div class="table-wrap">
          <table data-testid="host-keys">
            <thead>
              <tr>
                <th scope="col">Key</th>
                <th scope="col">State</th>
                <th scope="col">Requested</th>
                <th scope="col">Decision</th>
              </tr>
            </thead>
            <tbody>
              {keys.data.map((k) => (
                <tr key={k.public_key} data-testid={`host-key-${k.public_key}`} data-state={k.state}>
                  <td>
                    <code class="key">{k.public_key}</code>
                  </td>
                  <td>
                    <span class={`key-state k-${k.state}`}>{k.state}</span>
                    {k.via && <span class="muted small"> via {k.via}</span>}
                  </td>
                  <td title={absolute(k.requested_at)}>
                    {relative(k.requested_at, now)} <span class="muted small">from {sourceText(k)}</span>
                  </td>
                  <td>{decision(k, now)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {keys.data && !enrolled ? (
        <p class="muted">No key of {host} is enrolled: there is nothing to revoke.</p>
      ) : (
        <div class="buttons">
          <ConfirmButton
            label="Revoke bus credentials"
            testid="revoke-button"
            question={`Revoke the bus credentials of ${host}? It is disconnected from the bus at once and stays cut off until it enrolls again (with a new token, or an admin's approval).`}
            confirm="Revoke"
            onConfirm={revoke}
          />
        </div>
      )}
    </section>
  );
}
