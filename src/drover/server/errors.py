"""Errors of the server, each mapped to one HTTP status by the API.

ServerError
├── NotFound       an application, service, host or action that does not exist (404)
├── Conflict       a request the object's state no longer allows, e.g. cancelling a finished
│                  rollout (409)
├── Unprocessable  a request that names real things but cannot be carried out (422)
└── Unavailable    a part the server needs (the bus) cannot be reached now (503)
"""

from __future__ import annotations


class ServerError(Exception):
    status_code = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(ServerError):
    status_code = 404


class Unprocessable(ServerError):
    status_code = 422


class Conflict(ServerError):
    status_code = 409


class Unavailable(ServerError):
    status_code = 503
