"""Errors of the server, each mapped to one HTTP status by the API.

ServerError
├── BadRequest     a request that cannot be understood, e.g. an OIDC callback out of turn (400)
├── Unauthorized   no valid credentials: no token, an unknown, expired or revoked one (401)
├── Forbidden      valid credentials without the permission the request needs (403)
├── TooManyRequests  too many failed logins for a name or from an address (429)
├── NotFound       an application, service, host or action that does not exist (404)
├── Conflict       a request the object's state no longer allows, e.g. cancelling a finished
│                  rollout (409)
├── Unprocessable  a request that names real things but cannot be carried out (422)
└── Unavailable    a part the server needs (the bus, a valid config) is not there now (503)
"""

from __future__ import annotations


class ServerError(Exception):
    status_code = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def headers(self) -> dict[str, str]:
        """Headers the answer must carry besides the message."""
        return {}


class BadRequest(ServerError):
    status_code = 400


class Unauthorized(ServerError):
    status_code = 401

    def headers(self) -> dict[str, str]:
        # RFC 9110: a 401 names how to authenticate; the reason goes in the body too.
        return {"WWW-Authenticate": 'Bearer realm="drover"'}


class Forbidden(ServerError):
    status_code = 403


class TooManyRequests(ServerError):
    status_code = 429

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after_s)}


class NotFound(ServerError):
    status_code = 404


class Unprocessable(ServerError):
    status_code = 422


class Conflict(ServerError):
    status_code = 409


class Unavailable(ServerError):
    status_code = 503

    def __init__(self, message: str, retry_after_s: int | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s

    def headers(self) -> dict[str, str]:
        return {} if self.retry_after_s is None else {"Retry-After": str(self.retry_after_s)}


def no_active_config() -> Unavailable:
    """Asked for what needs the config before one is in force: a server still starting (a
    balancer may send requests before its first read), or a repository never yet valid."""
    return Unavailable(
        "no valid configuration is active yet: the server is starting, or its config has "
        "never been valid (GET /api/v1/config says why)",
        retry_after_s=2,
    )
