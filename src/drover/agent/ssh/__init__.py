"""Hosts without an agent, managed over SSH by the agent of another host (config:
`hosts.<id>.ssh`).

- `connections.py`: the SSH connections to the targets, at most so many open at once;
- `remote.py`: one argv run on a target, its environment passed on stdin, never its command line;
- `providers.py`: script and systemd services of a target, checked and acted on over SSH;
- `commands.py`: an application's commands run on a target;
- `targets.py`: each target as a host of the fleet (kind `ssh-target`): its own enrollment,
  bus identity, ledger and reports, run inside the agent that reaches it.
"""
