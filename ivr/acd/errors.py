"""Typed errors of the ACD core.

Rule: an operation that raises has not changed anything (the router validates before it mutates),
so the caller can log the error and carry on with a consistent router.
"""

from __future__ import annotations


class AcdError(Exception):
    """Base class of every error raised by ``ivr.acd``."""


class ConfigError(AcdError, ValueError):
    """A queue or agent definition (usually read from YAML) is invalid."""


class IllegalTransition(AcdError):
    """An agent event is not allowed in the agent's current state; the state is unchanged."""

    def __init__(self, agent_id: str, state: object, event: object) -> None:
        self.agent_id = agent_id
        self.state = state
        self.event = event
        super().__init__(f"agent {agent_id!r}: event {getattr(event, 'value', event)!r} is illegal "
                         f"in state {getattr(state, 'value', state)!r}")


class UnknownAgent(AcdError, KeyError):
    def __str__(self) -> str:  # KeyError would repr() the message
        return f"unknown agent {self.args[0]!r}"


class UnknownQueue(AcdError, KeyError):
    def __str__(self) -> str:
        return f"unknown queue {self.args[0]!r}"


class UnknownCall(AcdError, KeyError):
    def __str__(self) -> str:
        return f"unknown call {self.args[0]!r} (never enqueued, or already left the ACD)"


class DuplicateId(AcdError, ValueError):
    """An agent, queue or call id is already in use."""


class InvalidCallState(AcdError):
    """The operation does not fit the call's current state (e.g. answering a call that is not ringing)."""
