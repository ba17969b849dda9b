"""Errors of the agent.

AgentError
├── UnknownService   an action names a service this host does not run
└── LedgerError      the local ledger cannot be read or written
"""

from __future__ import annotations


class AgentError(Exception):
    pass


class UnknownService(AgentError):
    def __init__(self, application: str, service: str) -> None:
        super().__init__(f"no service {application}/{service} on this host")
        self.application = application
        self.service = service


class LedgerError(AgentError):
    pass
