import { useState } from "preact/hooks";
import { get, post } from "../api/client";
import { errorText } from "../api/errors";
import type { LoginOut, Whoami } from "../api/types";
import { ErrorAlert } from "../components/ErrorAlert";
import { useSession } from "../lib/context";
import { useTitle } from "../lib/hooks";
import { navigate, safeNext, useLocation } from "../lib/router";

export function LoginPage() {
  useTitle("Sign in");
  const { setWho } = useSession();
  const { search } = useLocation();
  const [name, setName] = useState("");
  const [password, setPassword] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await post<LoginOut>("/api/v1/login", { name, password });
      setWho(await get<Whoami>("/api/v1/whoami"));
      navigate(safeNext(new URLSearchParams(search).get("next")), true);
    } catch (err) {
      setError(errorText(err));
      setBusy(false);
    }
  };

  return (
    <main id="main" class="login">
      <h1 tabIndex={-1}>Sign in to drover</h1>
      <ErrorAlert errors={[error]} />
      <form onSubmit={submit} class="card">
        <div class="field">
          <label for="login-name">Name</label>
          <input id="login-name" data-testid="login-name" autoComplete="username" required value={name} onInput={(e) => setName(e.currentTarget.value)} />
        </div>
        <div class="field">
          <label for="login-password">Password</label>
          <input
            id="login-password"
            data-testid="login-password"
            type="password"
            autoComplete="current-password"
            required
            value={password}
            onInput={(e) => setPassword(e.currentTarget.value)}
          />
        </div>
        <button type="submit" class="primary" data-testid="login-submit" disabled={busy}>
          {busy ? "Signing in…" : "Sign in"}
        </button>
      </form>
    </main>
  );
}
