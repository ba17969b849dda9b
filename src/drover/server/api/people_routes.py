"""Users and API tokens.

Users are for admins (unscoped `admin`), but everyone may set their own password. Tokens are
everyone's own: any signed-in caller may make, list and revoke their own; those of others need
`admin`.

Who set a password or made a token is recorded (`password_set_by`, `created_by`): a password
an admin set, or a token an admin made, is not its holder's alone, and votes on approvals
through it do not count (server/approvals.py). A token made through such a credential
inherits its maker: signing in with the password an admin set and making a token is still
the admin's doing.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response, status

from drover.model.access import USER_NAME_PATTERN, Permission, Principal
from drover.server.api.access import Caller, authorize
from drover.server.api.deps import Ctx
from drover.server.api.people_schemas import (
    GrantIO,
    TokenCreatedOut,
    TokenIn,
    TokenOut,
    UserChangeIn,
    UserIn,
    UserOut,
)
from drover.server.api.schemas import ErrorOut
from drover.server.context import ServerContext
from drover.server.errors import Conflict
from drover.store.tokens import ApiToken
from drover.store.users import User

people = APIRouter(prefix="/api/v1", tags=["people"])

REFUSALS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorOut} for code in (401, 403, 404, 409, 422)
}


@people.get("/users", response_model=list[UserOut], responses=REFUSALS)
async def list_users(ctx: Ctx, caller: Caller) -> list[UserOut]:
    await authorize(ctx, caller, Permission.ADMIN)
    return [_user_out(u) for u in await ctx.access.accounts.users.all()]


@people.post(
    "/users", response_model=UserOut, status_code=status.HTTP_201_CREATED, responses=REFUSALS
)
async def add_user(body: UserIn, ctx: Ctx, caller: Caller) -> UserOut:
    """Add a user with direct grants and groups; with a password, it may sign in with it."""
    await authorize(ctx, caller, Permission.ADMIN)
    user = await ctx.access.accounts.add_user(
        body.name,
        by=caller.name,
        grants=[g.grant() for g in body.grants],
        groups=body.groups,
        password=body.password,
        as_user=_actor(caller),
    )
    return _user_out(user)


@people.get("/users/{name}", response_model=UserOut, responses=REFUSALS)
async def get_user(name: str, ctx: Ctx, caller: Caller) -> UserOut:
    await authorize(ctx, caller, Permission.ADMIN)
    return _user_out(await ctx.access.accounts.user(name))


@people.patch("/users/{name}", response_model=UserOut, responses=REFUSALS)
async def change_user(name: str, body: UserChangeIn, ctx: Ctx, caller: Caller) -> UserOut:
    """Change grants, groups, password, or disable (sessions end; tokens stop working).
    Admins only, except that everyone may set their own password."""
    own_password_only = (
        name == caller.name
        and body.password is not None
        and body.grants is None
        and body.groups is None
        and body.disabled is None
    )
    if not own_password_only:
        await authorize(ctx, caller, Permission.ADMIN)
    if name == caller.name and (body.disabled or body.grants is not None):
        raise Conflict("you may not disable yourself or change your own grants: ask another admin")
    user = await ctx.access.accounts.change_user(
        name,
        by=caller.name,
        grants=[g.grant() for g in body.grants] if body.grants is not None else None,
        groups=body.groups,
        password=body.password,
        disabled=body.disabled,
        # Your own password is set by you (the only way to make one your own, after an admin
        # made your account or reset it); another's, by whoever holds your credential.
        as_user=caller.name if name == caller.name else _actor(caller),
    )
    return _user_out(user)


@people.delete("/users/{name}", status_code=status.HTTP_204_NO_CONTENT, responses=REFUSALS)
async def remove_user(name: str, ctx: Ctx, caller: Caller) -> Response:
    """Remove a user with its tokens and sessions (the audit keeps what they did). An OIDC
    user is disabled instead: removed, its next sign-in would make it anew."""
    await authorize(ctx, caller, Permission.ADMIN)
    if name == caller.name:
        raise Conflict("you may not remove yourself: ask another admin")
    await ctx.access.accounts.remove_user(name, by=caller.name)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@people.post(
    "/tokens",
    response_model=TokenCreatedOut,
    status_code=status.HTTP_201_CREATED,
    responses=REFUSALS,
)
async def create_token(ctx: Ctx, caller: Caller, body: TokenIn | None = None) -> TokenCreatedOut:
    """A new API token, the caller's own or (admins) another user's. The secret is in this
    answer only."""
    request = body or TokenIn()
    owner = request.user or caller.name
    await _may_touch_tokens_of(ctx, caller, owner)
    issued = await ctx.access.accounts.create_token(
        owner,
        name=request.name,
        expires_in=timedelta(days=request.expires_in_days),
        by=caller.name,
        as_user=_actor(caller),
    )
    return TokenCreatedOut(**_token_out(issued.token).model_dump(), secret=issued.secret)


@people.get("/tokens", response_model=list[TokenOut], responses=REFUSALS)
async def list_tokens(
    ctx: Ctx,
    caller: Caller,
    user: Annotated[
        str | None,
        Query(
            pattern=rf"^\*$|{USER_NAME_PATTERN}",
            description="whose; '*' for everyone's (admins)",
        ),
    ] = None,
) -> list[TokenOut]:
    """The caller's tokens (or another user's, or everyone's: admins), revoked ones too."""
    owner = user or caller.name
    await _may_touch_tokens_of(ctx, caller, owner)
    tokens = await ctx.access.accounts.tokens.of(None if owner == "*" else owner)
    return [_token_out(t) for t in tokens]


@people.delete("/tokens/{token_id}", status_code=status.HTTP_204_NO_CONTENT, responses=REFUSALS)
async def revoke_token(token_id: str, ctx: Ctx, caller: Caller) -> Response:
    """Revoke a token: it stops working at once."""
    token = await ctx.access.accounts.token(token_id)
    if token is not None:
        await _may_touch_tokens_of(ctx, caller, token.user)
    elif not caller.may(Permission.ADMIN):
        # Whether an id exists is nobody's business but its owner's and the admins'.
        await authorize(ctx, caller, Permission.ADMIN)
    await ctx.access.accounts.revoke_token(token_id, by=caller.name)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


def _actor(caller: Principal) -> str:
    """Who really does what the caller asks: whoever else holds the caller's credential (an
    admin who set its password or made its token), else the caller."""
    return caller.credential_by or caller.name


async def _may_touch_tokens_of(ctx: ServerContext, caller: Principal, owner: str) -> None:
    if owner != caller.name:
        await authorize(ctx, caller, Permission.ADMIN)


def _user_out(user: User) -> UserOut:
    return UserOut(
        name=user.name,
        source=user.source.value,
        grants=[GrantIO.of(g) for g in user.grants],
        groups=list(user.groups),
        has_password=user.has_password,
        password_set_by=user.password_set_by,
        password_set_at=user.password_set_at,
        created_at=user.created_at,
        disabled_at=user.disabled_at,
    )


def _token_out(token: ApiToken) -> TokenOut:
    return TokenOut(
        id=token.id,
        user=token.user,
        name=token.name,
        created_at=token.created_at,
        expires_at=token.expires_at,
        revoked_at=token.revoked_at,
        last_used_at=token.last_used_at,
        created_by=token.created_by,
    )
