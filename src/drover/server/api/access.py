"""Who is calling, and whether they may: the two questions every route asks first.

A route takes the caller as a dependency and asks before it touches anything:

    @api.post("/approvals/{approval_id}/approve")
    async def approve(approval_id: str, ctx: Ctx, caller: Caller) -> ApprovalOut:
        approval = await ctx.approvals.get(approval_id)          # 404 if there is none
        await authorize(ctx, caller, Permission.APPROVE, approval.application)
        ...

`Caller` answers 401 (with `WWW-Authenticate`) when the request carries no valid credentials.
`authorize` answers 403 with what is missing ("alice may not act on shop (production): needs
operator") and puts the denial on the audit trail as `access.denied`. With an application it
looks up the application's environment in the active config itself; without one, only an
unscoped grant will do (see drover.model.access).
"""

from __future__ import annotations

import contextvars
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyCookie, HTTPAuthorizationCredentials, HTTPBearer

from drover.model.access import Permission, Principal, least_role
from drover.server.api.deps import Ctx
from drover.server.auth.authenticator import (
    CSRF_COOKIE,
    CSRF_HEADER,
    SESSION_COOKIE,
    Presented,
    audit_text,
)
from drover.server.context import ServerContext
from drover.server.errors import Forbidden, Unauthorized
from drover.store.audit import AuditEntry

_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="token",
    description="An API token: `drover login` or `drover token create` makes one.",
)
_session_cookie = APIKeyCookie(
    name=SESSION_COOKIE,
    auto_error=False,
    scheme_name="session",
    description=(
        "The cookie `POST /api/v1/login` sets. Requests that change anything also need the "
        f"`{CSRF_HEADER}` header, equal to the `{CSRF_COOKIE}` cookie."
    ),
)
Bearer = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
SessionCookie = Annotated[str | None, Depends(_session_cookie)]
# The request being authorized, for the audit entry of a denial (authorize has no request).
_REQUEST: contextvars.ContextVar[tuple[str, str]] = contextvars.ContextVar(
    "request_line", default=("", "")
)


def presented(request: Request, bearer: Bearer, session: SessionCookie) -> Presented:
    return Presented(
        method=request.method,
        path=request.url.path,
        bearer=bearer.credentials if bearer is not None else None,
        session=session,
        csrf_header=request.headers.get(CSRF_HEADER),
        csrf_cookie=request.cookies.get(CSRF_COOKIE),
    )


async def authenticated(
    request: Request, ctx: Ctx, bearer: Bearer, session: SessionCookie
) -> Principal:
    """The caller behind the request's token or session cookie; 401 without valid ones."""
    given = presented(request, bearer, session)
    _REQUEST.set((given.method, given.path))
    found = await ctx.access.authenticator.authenticate(given)
    request.state.authenticated = found
    return found.principal


async def maybe_authenticated(
    request: Request, ctx: Ctx, bearer: Bearer, session: SessionCookie
) -> Principal | None:
    """The caller if the request carries valid credentials, else None: for what is open to
    everyone but shows more to those who sign in."""
    if bearer is None and session is None:
        return None
    try:
        return await authenticated(request, ctx, bearer, session)
    except (Unauthorized, Forbidden):
        return None


Caller = Annotated[Principal, Depends(authenticated)]
MaybeCaller = Annotated[Principal | None, Depends(maybe_authenticated)]


def environment_of(ctx: ServerContext, application: str) -> str | None:
    """The application's environment in the active config; None when it is not configured."""
    config = ctx.config.active
    app = config.applications.get(application) if config is not None else None
    return app.environment if app is not None else None


async def authorize(
    ctx: ServerContext,
    caller: Principal,
    permission: Permission,
    application: str | None = None,
    *,
    environment: str | None = None,
) -> None:
    """Raise Forbidden (403), on the audit trail, unless `caller` has `permission` on
    `application` (in `environment`, by default the one the active config gives it), or with
    no application, unscoped."""
    if application is not None and environment is None:
        environment = environment_of(ctx, application)
    if caller.may(permission, application, environment):
        return
    await ctx.audit.record(
        AuditEntry(
            actor=caller.name,
            kind="access.denied",
            subject=audit_text(application or "*"),
            at=ctx.clock.now(),
            detail={
                "method": _REQUEST.get()[0],
                "path": audit_text(_REQUEST.get()[1], 2000),
                "permission": str(permission),
                "application": audit_text(application) if application else None,
                "environment": environment,
                "via": caller.via,
            },
        )
    )
    raise Forbidden(denial(caller, permission, application, environment))


def denial(
    caller: Principal, permission: Permission, application: str | None, environment: str | None
) -> str:
    """`alice may not act on shop (production): needs operator`."""
    role = least_role(permission)
    if application is None:
        return f"{caller.name} may not {permission}: needs {role} without a scope"
    where = f"{application} ({environment})" if environment else application
    return f"{caller.name} may not {permission} on {where}: needs {role}"
