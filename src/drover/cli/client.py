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

    def close(self) -> None:
        self._http.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as err:
            raise CliError(f"cannot reach the drover server at {self.base_url}: {err}") from err
        if response.status_code in (400, 404, 409, 422):
            raise CliError(_detail(response), exit_code=2)
        if response.is_error:
            raise CliError(f"server answered {response.status_code}: {_detail(response)}")
        return response.json()


def _detail(response: httpx.Response) -> str:
    try:
        detail = response.json().get("detail")
    except ValueError:
        return response.text[:500]
    if isinstance(detail, list):  # FastAPI validation errors
        return "; ".join(
            f"{'.'.join(str(p) for p in d.get('loc', [])[1:])}: {d.get('msg')}" for d in detail
        )
    return str(detail)


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
