"""Signing in and out: password login, OIDC, logout, and who the caller is.

The session cookie is HttpOnly (no script reads it) and SameSite=Strict (no other site's
request carries it), Secure when the server's public URL is https. The CSRF token comes back
in the login answer and in a cookie a script may read, to be sent as `X-CSRF-Token`.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Cookie, Query, Request, Response, status
from fastapi.responses import HTMLResponse, RedirectResponse

from drover.server.api.access import Caller
from drover.server.api.deps import Ctx
from drover.server.api.people_schemas import GrantIO, LoginIn, LoginOut, WhoamiOut
from drover.server.api.schemas import ErrorOut
from drover.server.auth.authenticator import CSRF_COOKIE, SESSION_COOKIE, Authenticated
from drover.server.auth.oidc import CALLBACK_PATH, LOGIN_TIME, STATE_COOKIE, OidcLogin
from drover.server.auth.sessions import OpenedSession
from drover.server.auth.settings import AuthSettings
from drover.server.context import ServerContext
from drover.server.errors import NotFound, Unprocessable

auth = APIRouter(prefix="/api/v1", tags=["auth"])
oidc = APIRouter(prefix="/auth/oidc", tags=["auth"])

REFUSED: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorOut},
    429: {"model": ErrorOut, "description": "too many failed logins; see Retry-After"},
}


@auth.post("/login", response_model=LoginOut, responses=REFUSED)
async def login(body: LoginIn, request: Request, response: Response, ctx: Ctx) -> LoginOut:
    """Sign in with a name and password: sets the session cookie and the CSRF cookie."""
    source = request.client.host if request.client else ""
    opened = await ctx.access.sessions.login(body.name, body.password, source)
    _set_session_cookies(response, opened, ctx.access.settings)
    return LoginOut(
        name=opened.session.user,
        csrf_token=opened.session.csrf_token,
        expires_at=opened.session.expires_at,
    )


@auth.post(
    "/logout",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={401: {"model": ErrorOut}, 422: {"model": ErrorOut}},
)
async def logout(request: Request, ctx: Ctx, caller: Caller) -> Response:
    """End the session of this browser; its cookies are cleared."""
    found: Authenticated = request.state.authenticated
    if found.session_sha256 is None:
        raise Unprocessable(
            "logout ends a browser session; an API token is revoked instead "
            "(DELETE /api/v1/tokens/{id}, drover token revoke)"
        )
    await ctx.access.sessions.logout(caller.name, found.session_sha256)
    response = Response(status_code=status.HTTP_204_NO_CONTENT)
    _clear_session_cookies(response, ctx.access.settings)
    return response


@auth.get("/whoami", response_model=WhoamiOut, responses={401: {"model": ErrorOut}})
async def whoami(caller: Caller) -> WhoamiOut:
    """The caller's name, groups, grants (direct and by group) and how they signed in."""
    return WhoamiOut(
        name=caller.name,
        groups=sorted(caller.groups),
        grants=[GrantIO.of(g) for g in caller.grants],
        via=caller.via,
    )


@oidc.get(
    "/login",
    status_code=status.HTTP_302_FOUND,
    response_class=RedirectResponse,
    responses={404: {"model": ErrorOut}, 503: {"model": ErrorOut}},
)
async def oidc_login(ctx: Ctx) -> RedirectResponse:
    """Begin signing in through the identity provider: a redirect to it."""
    flow = _oidc(ctx)
    redirect = await flow.begin()
    response = RedirectResponse(redirect.url, status_code=status.HTTP_302_FOUND)
    # Lax, not Strict: the provider sends the browser back here from its own site.
    response.set_cookie(
        STATE_COOKIE,
        redirect.state,
        max_age=int(LOGIN_TIME.total_seconds()),
        path=CALLBACK_PATH,
        httponly=True,
        samesite="lax",
        secure=ctx.access.settings.secure_cookies,
    )
    return response


@oidc.get(
    "/callback",
    response_class=HTMLResponse,
    responses={code: {"model": ErrorOut} for code in (400, 401, 404, 409, 503)},
)
async def oidc_callback(
    ctx: Ctx,
    code: Annotated[str | None, Query(max_length=4096)] = None,
    state: Annotated[str | None, Query(max_length=512)] = None,
    error: Annotated[str | None, Query(max_length=512)] = None,
    state_cookie: Annotated[str | None, Cookie(alias=STATE_COOKIE)] = None,
) -> HTMLResponse:
    """Where the identity provider sends the browser back: a session, then on to `/`."""
    opened = await _oidc(ctx).finish(code=code, state=state, state_cookie=state_cookie, error=error)
    # A page that moves on, not a 302: a redirect chain that began on the provider's site is
    # cross-site to the browser, which would withhold the new SameSite=Strict cookie from `/`.
    response = HTMLResponse(
        '<!doctype html><meta http-equiv="refresh" content="0;url=/">'
        '<title>drover</title><p>Signed in. <a href="/">Continue</a></p>'
    )
    _set_session_cookies(response, opened, ctx.access.settings)
    response.delete_cookie(STATE_COOKIE, path=CALLBACK_PATH)
    return response


def _oidc(ctx: ServerContext) -> OidcLogin:
    if ctx.access.oidc is None:
        raise NotFound("sign-in through OIDC is not configured on this server")
    return ctx.access.oidc


def _set_session_cookies(response: Response, opened: OpenedSession, settings: AuthSettings) -> None:
    lifetime = int(settings.session_lifetime.total_seconds())
    response.set_cookie(
        SESSION_COOKIE,
        opened.id,
        max_age=lifetime,
        path="/",
        httponly=True,
        samesite="strict",
        secure=settings.secure_cookies,
    )
    response.set_cookie(
        CSRF_COOKIE,
        opened.session.csrf_token,
        max_age=lifetime,
        path="/",
        httponly=False,  # the GUI's script reads it to send X-CSRF-Token
        samesite="strict",
        secure=settings.secure_cookies,
    )


def _clear_session_cookies(response: Response, settings: AuthSettings) -> None:
    for name in (SESSION_COOKIE, CSRF_COOKIE):
        response.delete_cookie(name, path="/", samesite="strict", secure=settings.secure_cookies)
