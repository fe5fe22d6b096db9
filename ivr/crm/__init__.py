"""Caller-ID lookup against a CRM: who is calling, before an agent has to ask.

Modules: ``phone`` (E.164 normalisation, masking), ``model`` (dataclasses),
``lookup`` (protocol, counters, call-safe guard), ``store`` (embedded SQLite
CRM and interaction history), ``http`` (external CRM adapter), ``mapping``
(CRM JSON -> Customer), ``cache``/``breaker`` (resilience), ``rules``
(repeat caller, FCR, routing hints), ``factory`` (config -> backend).

Typical use on a call::

    crm = crm_from_config(config["crm"])
    policy = load_routing("config/crm/routing.yaml")
    task = asyncio.create_task(crm.lookup_caller(channel_caller_id))  # while the welcome prompt plays
    result = await task                                                 # never raises, time-boxed
    flow_vars.update(result.as_flow_vars())
    hints = policy.hints(result)
"""

from ivr.crm.breaker import BreakerState, CircuitBreaker
from ivr.crm.errors import CrmConfigError, InvalidRecord
from ivr.crm.factory import crm_from_config, load_routing
from ivr.crm.lookup import CrmLookup, CrmStats, GuardedLookup, NullCrm
from ivr.crm.model import Customer, Interaction, LookupResult, LookupStatus, Ticket
from ivr.crm.phone import mask, normalize
from ivr.crm.rules import RoutingHints, RoutingPolicy, fcr, is_repeat_caller, routing_from_dict

__all__ = [
    "BreakerState",
    "CircuitBreaker",
    "CrmConfigError",
    "CrmLookup",
    "CrmStats",
    "Customer",
    "GuardedLookup",
    "Interaction",
    "InvalidRecord",
    "LookupResult",
    "LookupStatus",
    "NullCrm",
    "RoutingHints",
    "RoutingPolicy",
    "Ticket",
    "crm_from_config",
    "fcr",
    "is_repeat_caller",
    "load_routing",
    "mask",
    "normalize",
    "routing_from_dict",
]
