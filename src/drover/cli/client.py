"""A small client of the REST API, turning every failure into a CliError with a clear message."""

from __future__ import annotations

import getpass
from typing import Any

import httpx


class CliError(Exception):
    """A user-facing failure: printed without a traceback; exit code 2 for bad input,
    1 for everything else."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


class ApiClient:
    def __init__(self, base_url: str, timeout: float = 10.0) -> None:
        _check_url(base_url)
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(
            base_url=self.base_url,
            timeout=timeout,
            headers={"X-Drover-User": _user()},
        )

    def get(self, path: str, **params: Any) -> Any:
        return self._call("GET", path, params=params or None)

    def post(self, path: str, body: dict[str, Any]) -> Any:
        return self._call("POST", path, json=body)

    def delete(self, path: str) -> Any:
        return self._call("DELETE", path)

    def close(self) -> None:
        self._http.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as err:
            raise CliError(f"cannot reach the drover server at {self.base_url}: {err}") from err
        except (httpx.HTTPError, httpx.InvalidURL) as err:
            raise CliError(
                f"request to the drover server at {self.base_url} failed: {err}"
            ) from err
        if response.status_code in (400, 404, 409, 422):
            raise CliError(_detail(response), exit_code=2)
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
        url = httpx.URL(base_url)
    except httpx.InvalidURL as err:
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


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
