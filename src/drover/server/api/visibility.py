"""What of the fleet a caller may see: applications by their scope, hosts by what runs there.

A caller with `read` unscoped sees everything. Anyone else sees the applications their grants
cover, and a host when one of those applications is placed on it by the active config or
reported running there, with only those applications' services.
"""

from __future__ import annotations

from drover.config.placement import runs_on
from drover.model.access import Permission, Principal
from drover.server.api.access import authorize, environment_of
from drover.server.api.schemas import HostOut
from drover.server.context import ServerContext


class Visibility:
    """One request's view: built per request, as the config and the caller change."""

    def __init__(self, ctx: ServerContext, caller: Principal) -> None:
        self._ctx = ctx
        self._caller = caller
        self.everything = caller.may(Permission.READ)
        self._applications: dict[str, bool] = {}

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
        config = self._ctx.config.active
        if config is not None and any(
            self.application(name) and runs_on(config, app, host)
            for name, app in config.applications.items()
        ):
            return True
        return any(self.application(s.application) for s in self._ctx.fleet.services_of(host))

    async def require_host(self, host: str) -> None:
        """Forbidden (on the record) unless the caller may see `host`; whether it exists is
        not told to those who may not."""
        if not self.host(host):
            await authorize(self._ctx, self._caller, Permission.READ)

    def host_out(self, view: HostOut) -> HostOut:
        if self.everything:
            return view
        services = [s for s in view.services if self.application(s.application)]
        return view.model_copy(update={"services": services})
