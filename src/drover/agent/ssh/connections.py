"""SSH connections to the targets an agent manages, at most `limit` open at once.

One connection per target, shared by everything run there (SSH multiplexes sessions over it),
opened when first needed and closed after IDLE seconds unused. When `limit` connections are
open and another target needs one, the one unused the longest is closed for it; when all are in
use, the new one waits. So a gateway with a thousand targets holds no more than `limit` TCP
connections and SSH sessions, whatever the config asks.

A target's host key is given in the config and is the only one accepted: there is no trust on
first use. Its credentials are secret references (ops/secrets.py), resolved as the connection
is made and not kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncssh

from drover.bus.messages import SshTarget
from drover.ops.cancels import bounded
from drover.ops.secrets import Secrets, SecretUnavailable, installed

log = logging.getLogger(__name__)

IDLE = 60.0  # seconds a connection stays open unused
KEEPALIVE = 15.0  # seconds between keepalives; three unanswered close the connection


class SshUnavailable(Exception):
    """The target cannot be reached or will not let us in; the message says which and why."""


@dataclass
class _Connection:
    target: SshTarget
    connection: asyncssh.SSHClientConnection
    users: int = 0
    last_used: float = 0.0


class SshPool:
    def __init__(self, limit: int, secrets: Secrets | None = None, idle: float = IDLE) -> None:
        if limit < 1:
            raise ValueError("at least one connection")
        self.limit = limit
        self.idle = idle
        self._secrets = secrets or installed()
        self._open: dict[str, _Connection] = {}
        self._opening: dict[str, asyncio.Future[_Connection]] = {}
        self._changed = asyncio.Condition()
        self.peak = 0  # the most connections open (or being opened) at once
        self.opened = 0  # connections made, in all

    @property
    def open_count(self) -> int:
        return len(self._open) + len(self._opening)

    @contextlib.asynccontextmanager
    async def session(self, target: SshTarget) -> AsyncIterator[asyncssh.SSHClientConnection]:
        """The target's connection, for the time of the block. Raises SshUnavailable."""
        held = await self._acquire(target)
        try:
            yield held.connection
        finally:
            async with self._changed:
                held.users -= 1
                held.last_used = asyncio.get_running_loop().time()
                self._changed.notify_all()

    async def _acquire(self, target: SshTarget) -> _Connection:
        while True:
            async with self._changed:
                held = self._open.get(target.host)
                if held is not None and (held.target != target or held.connection.is_closed()):
                    self._drop(held)  # its config changed, or it broke
                    held = None
                if held is not None:
                    held.users += 1
                    return held
                opening = self._opening.get(target.host)
                if opening is None:
                    if self.open_count >= self.limit and not self._evict_one():
                        await self._changed.wait()
                        continue
                    opening = asyncio.get_running_loop().create_future()
                    self._opening[target.host] = opening
                    self.peak = max(self.peak, self.open_count)
                    mine = True
                else:
                    mine = False
            if not mine:
                with contextlib.suppress(SshUnavailable):
                    await asyncio.shield(opening)
                continue  # take it from _open (or fail to, and open it ourselves)
            try:
                connection = await self._connect(target)
            except BaseException as err:
                async with self._changed:
                    del self._opening[target.host]
                    self._changed.notify_all()
                failure = err if isinstance(err, SshUnavailable) else SshUnavailable(str(err))
                opening.set_exception(failure)
                opening.exception()  # retrieved: the waiters only retry
                raise
            held = _Connection(target, connection, users=1)
            async with self._changed:
                del self._opening[target.host]
                self._open[target.host] = held
                self._changed.notify_all()
            opening.set_result(held)
            self.opened += 1
            return held

    def _evict_one(self) -> bool:
        """Close the connection unused the longest (or one that broke), if one is unused."""
        for held in [h for h in self._open.values() if h.connection.is_closed()]:
            self._drop(held)
            return True
        idle = [held for held in self._open.values() if held.users == 0]
        if not idle:
            return False
        self._drop(min(idle, key=lambda held: held.last_used))
        return True

    def _drop(self, held: _Connection) -> None:
        if self._open.get(held.target.host) is held:
            del self._open[held.target.host]
        held.connection.close()

    async def close_idle(self) -> None:
        """A loop: close what has been unused for `idle` seconds."""
        while True:
            await asyncio.sleep(min(self.idle, 5.0))
            now = asyncio.get_running_loop().time()
            async with self._changed:
                for held in list(self._open.values()):
                    unused = held.users == 0 and now - held.last_used >= self.idle
                    if unused or held.connection.is_closed():
                        self._drop(held)
                self._changed.notify_all()

    async def close(self) -> None:
        async with self._changed:
            closing = list(self._open.values())
            for held in closing:
                self._drop(held)
        for held in closing:
            with contextlib.suppress(Exception):
                await bounded(held.connection.wait_closed(), 5)

    async def _connect(self, target: SshTarget) -> asyncssh.SSHClientConnection:
        where = f"{target.user}@{target.address}:{target.port}"
        try:
            key = await self._secrets.resolve("key", target.key) if target.key else None
            password = (
                await self._secrets.resolve("password", target.password)
                if target.password
                else None
            )
        except SecretUnavailable as err:
            raise SshUnavailable(f"cannot connect to {where}: {err}") from None
        try:
            host_key = asyncssh.import_public_key(target.host_key)
            client_keys = [asyncssh.import_private_key(key)] if key else []
        except (asyncssh.KeyImportError, ValueError) as err:
            raise SshUnavailable(f"cannot connect to {where}: a key is not usable: {err}") from None
        finally:
            del key
        try:
            return await asyncssh.connect(
                target.address,
                target.port,
                username=target.user,
                known_hosts=([host_key], [], []),
                client_keys=client_keys,
                password=password,
                agent_path=None,  # only the credentials the config names
                config=[],  # not the agent's user's ~/.ssh/config
                connect_timeout=target.connect_timeout,
                login_timeout=target.connect_timeout,
                keepalive_interval=KEEPALIVE,
                keepalive_count_max=3,
            )
        except asyncssh.HostKeyNotVerifiable:
            raise SshUnavailable(
                f"cannot connect to {where}: its host key is not the one the config gives"
            ) from None
        except asyncssh.PermissionDenied:
            raise SshUnavailable(f"cannot connect to {where}: permission denied") from None
        except (OSError, asyncssh.Error, TimeoutError) as err:
            if isinstance(err, OSError) and err.errno:
                reason = os.strerror(err.errno)  # "Connection refused", not asyncio's wording
            else:
                reason = getattr(err, "reason", "") or str(err) or type(err).__name__
            raise SshUnavailable(f"cannot connect to {where}: {reason}") from None
