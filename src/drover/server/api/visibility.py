"""What of the fleet a caller may see: applications by their scope, hosts by what runs there.

A caller with `read` unscoped sees everything. Anyone else sees the applications their grants
cover, and a host when one of those applications is placed on it by the active config or
reported running there, with only those applications' services.
"""

from __future__ import annotations

from drover.model.access import Permission, Principal
from drover.server.api.access import authorize, environment_of
from drover.server.context import ServerContext
from drover.server.health import placed_hosts


class Visibility:
    """One request's view: built per request, as the config and the caller change."""

    def __init__(self, ctx: ServerContext, caller: Principal) -> None:
        self._ctx = ctx
        self._caller = caller
        self.everything = caller.may(Permission.READ)
        self._applications: dict[str, bool] = {}
        self._hosts: set[str] | None = None  # for a scoped caller, once asked

    def application(self, name: str) -> bool:
        if self.everything:
            return True
        if name not in self._applications:
            env = environment_of(self._ctx, name)
            self._applications[name] = self._caller.may(Permission.READ, name, env)
        return self._applications[name]

    def host(self, host: str) -> bool:
        if self.everything:
            return True
        if self._hosts is None:
            self._hosts = self._visible_hosts()
        return host in self._hosts

    def _visible_hosts(self) -> set[str]:
        """Where an application the caller may read is placed, or reports a service: found
        once per request, from each application's cached placement (server.health)."""
        config = self._ctx.config.active
        fleet = self._ctx.fleet
        found: set[str] = set()
        if config is not None:
            for name, app in config.applications.items():
                if self.application(name):
                    found.update(placed_hosts(config, fleet, name, app))
        for host in fleet.hosts.keys() - found:
            if any(self.application(s.application) for s in fleet.services_of(host)):
                found.add(host)
        return found

    async def require_host(self, host: str) -> None:
        """Forbidden (on the record) unless the caller may see `host`; whether it exists is
        not told to those who may not."""
        if not self.host(host):
            await authorize(self._ctx, self._caller, Permission.READ)
