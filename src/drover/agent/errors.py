"""Errors of the agent.

AgentError
├── UnknownService   an action names a service this host does not run
├── LedgerError      the local ledger cannot be read or written
└── SettingsError    the agent's settings cannot be used (each bad value with its origin)
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


class SettingsError(AgentError):
    """Settings that cannot be used; the message says where each bad value came from."""
