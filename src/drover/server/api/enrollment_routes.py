"""Enrollment routes: hosts enroll and renew their bus credentials here; admins make tokens,
approve or reject requests, and revoke hosts.

`/enroll` and `/enroll/renew` take no user credentials: a host proves it holds the key it
names by signing the request with it (bus/trust/proof.py), and enrolls with a one-time token
or waits for an admin's approval. Everything else needs `admin`.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response, status
from pydantic import AwareDatetime, Field, StringConstraints

from drover.model.access import Permission
from drover.model.names import HostId
from drover.server.api.access import Caller, authorize
from drover.server.api.deps import Ctx
from drover.server.api.schemas import Body, ErrorOut, HostParam
from drover.server.enrollment import AgentCredentials, Proof
from drover.store.enrollment import EnrollmentToken, HostKey, KeyState

enrollment = APIRouter(prefix="/api/v1", tags=["enrollment"])

PublicKey = Annotated[str, StringConstraints(pattern=r"^[A-Z2-7]{56}$")]
Signature = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9+/=]{1,200}$")]
Secret = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,200}$")]

REFUSALS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorOut} for code in (400, 403, 404, 409, 429)
}


class ProofIn(Body):
    host: HostId
    public_key: PublicKey = Field(description="the host's user NKEY (U…)")
    signed_at: AwareDatetime
    signature: Signature = Field(description="base64 ed25519 signature, see docs/security.md")

    def proof(self) -> Proof:
        return Proof(self.host, self.public_key, self.signed_at, self.signature)


class EnrollIn(ProofIn):
    token: Secret | None = Field(
        default=None, description="a one-time enrollment token; without: wait for approval"
    )


class CredentialsOut(Body):
    host: str
    jwt: str = Field(description="the host's NATS user JWT")
    expires_at: AwareDatetime
    nats_urls: list[str]
    ca_pem: str | None = Field(description="the CA that signed nats-server's certificate")
    action_signer: str = Field(description="the public key every action is signed with")
    jetstream_domain: str | None = Field(
        default=None, description="the hub's JetStream domain, which the agent calls it by"
    )


class HostKeyOut(Body):
    host: str
    public_key: str
    state: KeyState
    requested_at: AwareDatetime
    source: str
    via: str
    decided_at: AwareDatetime | None
    decided_by: str | None
    revoked_at: AwareDatetime | None
    revoked_by: str | None


class TokenIn(Body):
    expires_in_s: int | None = Field(default=None, gt=0, le=7 * 24 * 3600)
    host: HostId | None = Field(default=None, description="only this host may use it")


class TokenOut(Body):
    id: str
    created_by: str
    created_at: AwareDatetime
    expires_at: AwareDatetime
    host: str | None
    used_at: AwareDatetime | None
    used_by_host: str | None


class NewTokenOut(TokenOut):
    token: str = Field(description="the secret: shown this once")


class KeyIn(Body):
    public_key: PublicKey


class RevokedOut(Body):
    host: str
    revoked_keys: list[str]


@enrollment.post(
    "/enroll",
    status_code=status.HTTP_201_CREATED,
    response_model=CredentialsOut | HostKeyOut,
    responses={**REFUSALS, 202: {"model": HostKeyOut, "description": "waiting for approval"}},
)
async def enroll(body: EnrollIn, request: Request, response: Response, ctx: Ctx) -> Any:
    """Enroll a host's key: its credentials at once with a valid token (201); without one,
    its request as it stands (202 while it waits). Ask again with the same key to wait."""
    source = request.client.host if request.client else ""
    answer = await ctx.enrollment.enroll(body.proof(), body.token, source)
    if isinstance(answer, HostKey):
        response.status_code = status.HTTP_202_ACCEPTED
        return _key_view(answer)
    return _credentials_view(answer)


@enrollment.post("/enroll/renew", response_model=CredentialsOut, responses=REFUSALS)
async def renew(body: ProofIn, ctx: Ctx) -> CredentialsOut:
    """New credentials for an enrolled key, before (or after) the old ones expire."""
    return _credentials_view(await ctx.enrollment.renew(body.proof()))


@enrollment.post(
    "/enrollment-tokens",
    status_code=status.HTTP_201_CREATED,
    response_model=NewTokenOut,
    responses=REFUSALS,
)
async def create_token(ctx: Ctx, caller: Caller, body: TokenIn | None = None) -> NewTokenOut:
    """A one-time enrollment token (its secret is shown only here)."""
    await authorize(ctx, caller, Permission.ADMIN)
    body = body or TokenIn()
    ttl = timedelta(seconds=body.expires_in_s) if body.expires_in_s else None
    token, secret = await ctx.enrollment.create_token(caller.name, ttl, body.host)
    return NewTokenOut(**_token_view(token).model_dump(), token=secret)


@enrollment.get("/enrollment-tokens", response_model=list[TokenOut], responses=REFUSALS)
async def list_tokens(ctx: Ctx, caller: Caller) -> list[TokenOut]:
    """Every enrollment token, used or not, newest first (never their secrets)."""
    await authorize(ctx, caller, Permission.ADMIN)
    return [_token_view(t) for t in await ctx.enrollment.store.tokens()]


@enrollment.get("/enrollments", response_model=list[HostKeyOut], responses=REFUSALS)
async def list_enrollments(
    ctx: Ctx,
    caller: Caller,
    state: Annotated[KeyState | None, Query(description="only keys in this state")] = None,
    host: Annotated[HostId | None, Query(description="only this host's keys")] = None,
) -> list[HostKeyOut]:
    """Hosts' bus keys: requests waiting for approval, enrolled, rejected and revoked."""
    await authorize(ctx, caller, Permission.ADMIN)
    return [_key_view(k) for k in await ctx.enrollment.keys(state, host)]


@enrollment.post("/enrollments/{host}/approve", response_model=HostKeyOut, responses=REFUSALS)
async def approve(host: HostParam, body: KeyIn, ctx: Ctx, caller: Caller) -> HostKeyOut:
    """Enroll the waiting key of a host; the host gets its credentials when it next asks."""
    await authorize(ctx, caller, Permission.ADMIN)
    return _key_view(await ctx.enrollment.approve(host, body.public_key, caller.name))


@enrollment.post(
    "/enrollments/{host}/reject",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=REFUSALS,
)
async def reject(host: HostParam, body: KeyIn, ctx: Ctx, caller: Caller) -> Response:
    await authorize(ctx, caller, Permission.ADMIN)
    await ctx.enrollment.reject(host, body.public_key, caller.name)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@enrollment.post("/hosts/{host}/revoke", response_model=RevokedOut, responses=REFUSALS)
async def revoke(host: HostParam, ctx: Ctx, caller: Caller) -> RevokedOut:
    """Cut a host off the bus: nats-server disconnects it within seconds and refuses it from
    then on. It may enroll again (with a token, or an approval)."""
    await authorize(ctx, caller, Permission.ADMIN)
    return RevokedOut(host=host, revoked_keys=await ctx.enrollment.revoke(host, caller.name))


def _credentials_view(credentials: AgentCredentials) -> CredentialsOut:
    return CredentialsOut.model_validate(credentials, from_attributes=True)


def _key_view(key: HostKey) -> HostKeyOut:
    return HostKeyOut.model_validate(key, from_attributes=True)


def _token_view(token: EnrollmentToken) -> TokenOut:
    return TokenOut.model_validate(token, from_attributes=True)
