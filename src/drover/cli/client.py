"""A small client of the REST API, turning every failure into a CliError with a clear message."""

from __future__ import annotations

import contextlib
import getpass
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import httpx


def httpx_module() -> Any:
    """httpx, imported at first use: with it come rich and pygments (its own CLI's), some
    10 MB that `drover agent`, which never calls the API, would otherwise carry all its life."""
    import httpx

    return httpx


class CliError(Exception):
    """A user-facing failure: printed without a traceback; exit code 2 for bad input,
    1 for everything else."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


STREAM_READ_TIMEOUT = 60.0

# What a 401 or 403 tells the person at the terminal to do, besides the server's reason.
_SIGN_IN = "sign in with `drover login --server URL`, or set DROVER_TOKEN or DROVER_TOKEN_FILE"


class ApiClient:
    def __init__(
        self,
        base_url: str,
        timeout: float = 10.0,
        token: str | None = None,
        anonymous: bool = False,
    ) -> None:
        """A client sending `token`, by default the one found as cli/credentials.py says;
        `anonymous`: none (to sign in)."""
        _check_url(base_url)
        self.base_url = base_url.rstrip("/")
        if token is None and not anonymous:
            from drover.cli.credentials import find_token

            token = find_token()
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx_module().Client(base_url=self.base_url, timeout=timeout, headers=headers)

    def get(self, path: str, **params: Any) -> Any:
        return self._call("GET", path, params=params or None)

    def post(self, path: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> Any:
        return self._call("POST", path, json=body, headers=headers)

    def patch(self, path: str, body: dict[str, Any]) -> Any:
        return self._call("PATCH", path, json=body)

    def login(self, name: str, password: str) -> tuple[dict[str, str], dict[str, Any]]:
        """Sign in: the headers that carry the session (cookie and CSRF token) and the answer."""
        try:
            response = self._http.post("/api/v1/login", json={"name": name, "password": password})
        except httpx_module().HTTPError as err:
            raise CliError(f"cannot reach the drover server at {self.base_url}: {err}") from err
        if response.status_code in (401, 429):
            raise CliError(f"login refused: {_detail(response)}", exit_code=2)
        if response.is_error:
            raise CliError(f"server answered {response.status_code}: {_detail(response)}")
        body: dict[str, Any] = response.json()
        # Sent by hand, not through a cookie jar: a jar keeps Secure cookies from http URLs.
        cookies = "; ".join(f"{k}={v}" for k, v in response.cookies.items())
        self._http.cookies.clear()
        return {"Cookie": cookies, "X-CSRF-Token": body["csrf_token"]}, body

    def delete(self, path: str) -> Any:
        return self._call("DELETE", path)

    @contextlib.contextmanager
    def stream(
        self, path: str, params: Any = None, headers: dict[str, str] | None = None
    ) -> Iterator[httpx.Response]:
        """A GET whose body is read as it comes (server-sent events, a long output). Errors
        before the body are CliErrors; a connection lost while reading is httpx's own error,
        for the caller to resume from where it was."""
        # A live stream may be quiet for a while between its keep-alives (every 15 s).
        timeout = httpx_module().Timeout(self._http.timeout.connect, read=STREAM_READ_TIMEOUT)
        request = self._http.build_request("GET", path, params=params, headers=headers)
        request.extensions["timeout"] = timeout.as_dict()
        try:
            response = self._http.send(request, stream=True)
        except httpx_module().HTTPError as err:
            raise CliError(f"cannot reach the drover server at {self.base_url}: {err}") from err
        try:
            if response.is_error:
                response.read()
                bad_request = response.status_code in (400, 401, 403, 404, 409, 422)
                raise CliError(_detail(response), exit_code=2 if bad_request else 1)
            yield response
        finally:
            response.close()

    def close(self) -> None:
        self._http.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx_module().TransportError as err:
            raise CliError(f"cannot reach the drover server at {self.base_url}: {err}") from err
        except (httpx_module().HTTPError, httpx_module().InvalidURL) as err:
            raise CliError(
                f"request to the drover server at {self.base_url} failed: {err}"
            ) from err
        if response.status_code in (400, 404, 409, 422):
            raise CliError(_detail(response), exit_code=2)
        if response.status_code in (401, 403):
            hint = f" ({_SIGN_IN})" if response.status_code == 401 else ""
            raise CliError(f"{_detail(response)}{hint}", exit_code=2)
        if response.is_error:
            raise CliError(f"server answered {response.status_code}: {_detail(response)}")
        if response.status_code == 204:
            return None
        try:
            return response.json()
        except ValueError as err:
            raise CliError(
                f"the server at {self.base_url} answered something that is not JSON"
            ) from err


def _check_url(base_url: str) -> None:
    problem = f"--server {base_url!r}: invalid URL; expected e.g. http://127.0.0.1:8080"
    try:
        url = httpx_module().URL(base_url)
    except httpx_module().InvalidURL as err:
        raise CliError(f"{problem} ({err})", exit_code=2) from err
    if url.scheme not in ("http", "https") or not url.host:
        raise CliError(problem, exit_code=2)


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return _excerpt(response.text)
    detail = body.get("detail") if isinstance(body, dict) else None
    if detail is None:
        return _excerpt(response.text)
    if isinstance(detail, list):  # FastAPI validation errors
        return "; ".join(
            f"{'.'.join(str(p) for p in d.get('loc', [])[1:])}: {d.get('msg')}" for d in detail
        )
    return str(detail)


def _excerpt(text: str) -> str:
    """The start of a body that is not ours (an HTML error page, say) on one line."""
    return " ".join(text.split())[:300] or "(empty body)"


def os_user() -> str:
    """The name of whoever runs this, to default a login name."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
