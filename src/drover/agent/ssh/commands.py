"""An application's commands, run on an SSH target: what agent/commands.py does on the host,
done over SSH (remote.py) — the argv exactly, output streamed back and masked, the timeout and
an operator's abort ending the remote process group.

The environment is the target user's login environment with the command's `env`, its secrets
and the DROVER_* variables on top. `run_as` runs it through `sudo -n -u USER [-g GROUP]`, and a
target with `sudo: true` runs it as root through `sudo -n`: the login user needs sudo rights for
that without a password (sudo's refusal is the command's output, and it fails).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import asyncssh

from drover.agent.abort import Abort
from drover.agent.commands import CommandRunner, Ended
from drover.agent.ssh import remote
from drover.agent.ssh.connections import SshPool, SshUnavailable
from drover.bus.connection import Bus
from drover.bus.messages import CommandRun, SshTarget
from drover.model.command import param_environment

log = logging.getLogger(__name__)


class SshCommandRunner(CommandRunner):
    def __init__(self, bus: Bus, target: SshTarget, pool: SshPool) -> None:
        super().__init__(bus, target.host)
        self._target = target
        self._pool = pool

    async def _execute(
        self,
        action_id: str,
        application: str,
        run: CommandRun,
        secret: dict[str, str],
        sink: Callable[[bytes], None],
        abort: Abort,
    ) -> Ended:
        env = {
            **run.env,
            **secret,
            "DROVER_ACTION_ID": action_id,
            "DROVER_HOST": self._target.host,
            "DROVER_APPLICATION": application,
            "DROVER_COMMAND": run.name,
            **param_environment(run.params),
        }
        try:
            async with self._pool.session(self._target) as connection:
                log.info("action %s: %s starting on %s", action_id, run.name, self._target.host)
                finished = await remote.run(
                    connection,
                    run.argv,
                    env=env,
                    sudo=self._target.sudo,
                    run_as=run.run_as,
                    timeout=run.timeout_s,
                    sink=sink,
                    abort=abort,
                )
        except SshUnavailable as err:
            return Ended(None, f"cannot run {run.argv[0]}: {err}")
        except (OSError, asyncssh.Error) as err:
            return Ended(None, f"cannot run {run.argv[0]}: the SSH session failed: {err}")
        finally:
            del env
        if finished.timed_out:
            note = f"timed out after {run.timeout_s:g}s: its process group was stopped"
            return Ended(None, note, timed_out=True)
        if finished.aborted:
            return Ended(
                None, f"aborted by {abort.by}: its process group was stopped", aborted=True
            )
        note = f"killed by SIG{finished.signal}" if finished.signal else ""
        return Ended(finished.exit_code, note)
