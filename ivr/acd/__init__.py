"""Skill-based ACD core: pure (no I/O, no asyncio), injected clock, decisions as frozen dataclasses.

Modules: ``agent`` (agent config + state machine), ``queue`` (queue config), ``policy`` (eligibility,
relaxation, fit score), ``call`` (call input), ``router`` (matching), ``decisions`` (router output),
``record`` (call records), ``views`` (snapshots), ``index`` (internal indexes), ``autopause`` (when a
miss counts toward auto-pause, per-minute bound), ``errors``.
"""

from .agent import (
    NO_ANSWER,
    TRANSITIONS,
    Agent,
    AgentConfig,
    AgentEvent,
    AgentState,
    agent_from_dict,
    agent_to_dict,
)
from .autopause import AutoPausePolicy, AutoPauseState
from .call import Call, CallState
from .decisions import (
    AUTO_PAUSE_ACTIONS,
    AgentAutoPaused,
    AgentStateChanged,
    AutoPauseSuspended,
    CallFinished,
    CallMoved,
    CallRequeued,
    CancelOffer,
    Candidate,
    Decision,
    ExitOutcome,
    Explanation,
    Offer,
    QueueExit,
    StartWrapUp,
)
from .errors import (
    AcdError,
    ConfigError,
    DuplicateId,
    IllegalTransition,
    InvalidCallState,
    UnknownAgent,
    UnknownCall,
    UnknownQueue,
)
from .policy import Requirement, compile_requirements, fit_score, requirement_at
from .queue import (
    Overflow,
    QueueConfig,
    RelaxationStep,
    ServiceLevel,
    check_overflows,
    queue_from_dict,
    queue_to_dict,
)
from .record import CallOutcome, CallRecord
from .router import Router
from .views import AgentSnapshot, CallSnapshot, QueueSnapshot, QueueStats
from .why_not import WhyNot, why_not

__all__ = [
    "AUTO_PAUSE_ACTIONS",
    "NO_ANSWER",
    "TRANSITIONS",
    "AcdError",
    "Agent",
    "AgentAutoPaused",
    "AgentConfig",
    "AgentEvent",
    "AgentSnapshot",
    "AgentState",
    "AgentStateChanged",
    "AutoPausePolicy",
    "AutoPauseState",
    "AutoPauseSuspended",
    "Call",
    "CallFinished",
    "CallMoved",
    "CallOutcome",
    "CallRecord",
    "CallRequeued",
    "CallSnapshot",
    "CallState",
    "CancelOffer",
    "Candidate",
    "ConfigError",
    "Decision",
    "DuplicateId",
    "ExitOutcome",
    "Explanation",
    "IllegalTransition",
    "InvalidCallState",
    "Offer",
    "Overflow",
    "QueueConfig",
    "QueueExit",
    "QueueSnapshot",
    "QueueStats",
    "RelaxationStep",
    "Requirement",
    "Router",
    "ServiceLevel",
    "StartWrapUp",
    "UnknownAgent",
    "UnknownCall",
    "UnknownQueue",
    "WhyNot",
    "agent_from_dict",
    "agent_to_dict",
    "check_overflows",
    "compile_requirements",
    "fit_score",
    "queue_from_dict",
    "queue_to_dict",
    "requirement_at",
    "why_not",
]
