"""The flow file schema, as data: which keys each mapping accepts and what kind of value.

The loader walks a YAML document with these tables: a key not listed is rejected, a
required key that is absent is reported, and each value is checked by the reader for its
``kind`` (see the reader: ``reader_base.ReaderBase`` and its ``read_*`` subclasses). Defaults are not here: they live on the model classes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType


@dataclass(frozen=True)
class FieldSpec:
    kind: str
    required: bool = False


def _spec(**fields: FieldSpec) -> Mapping[str, FieldSpec]:
    return MappingProxyType(fields)


F = FieldSpec

FLOW_FIELDS = _spec(
    flow=F("name"),
    description=F("text"),
    entry=F("node_ref", required=True),
    language=F("language"),
    customer_wait=F("seconds_or_zero"),
    goodbye_prompt=F("prompts"),
    schedules=F("schedules"),
    nodes=F("nodes", required=True),
)

# Keys every node accepts besides its type's own.
NODE_COMMON_FIELDS = _spec(type=F("node_type", required=True), description=F("text"))

NODE_FIELDS: Mapping[str, Mapping[str, FieldSpec]] = MappingProxyType({
    "play": _spec(
        prompt=F("prompts", required=True),
        next=F("node_ref", required=True),
        barge_in=F("bool"),
    ),
    "menu": _spec(
        prompt=F("prompts", required=True),
        options=F("options", required=True),
        timeout=F("seconds"),
        max_attempts=F("count"),
        invalid_prompt=F("prompts"),
        timeout_prompt=F("prompts"),
        on_invalid=F("node_ref"),
        on_timeout=F("node_ref"),
        barge_in=F("bool"),
    ),
    "collect": _spec(
        variable=F("new_variable", required=True),
        prompt=F("prompts"),
        min_length=F("count"),
        max_length=F("count"),
        terminator=F("terminator"),
        first_digit_timeout=F("seconds"),
        inter_digit_timeout=F("seconds"),
        pattern=F("regex"),
        retries=F("count_or_zero"),
        invalid_prompt=F("prompts"),
        timeout_prompt=F("prompts"),
        secure=F("bool"),
        barge_in=F("bool"),
        next=F("node_ref", required=True),
        on_failure=F("node_ref"),
    ),
    "branch": _spec(
        rules=F("rules", required=True),
        default=F("node_ref", required=True),
        customer_wait=F("seconds_or_zero"),
    ),
    "set": _spec(
        variables=F("assignments", required=True),
        next=F("node_ref", required=True),
    ),
    "queue": _spec(
        queue=F("queue_ref", required=True),
        required_skills=F("skills"),
        optional_skills=F("skills"),
        priority=F("int"),
        max_wait=F("seconds"),
        on_answered=F("node_ref"),
        on_timeout=F("node_ref"),
        on_no_agents=F("node_ref"),
        on_full=F("node_ref"),
    ),
    "transfer": _spec(
        destination=F("destination"),
        number=F("phone_number"),
        trunk=F("trunk_ref"),
        timeout=F("seconds"),
        on_failure=F("node_ref"),
    ),
    "voicemail": _spec(
        mailbox=F("name", required=True),
        prompt=F("prompts"),
        max_seconds=F("count"),
        beep=F("bool"),
        next=F("node_ref"),
    ),
    "callback": _spec(
        queue=F("queue_ref", required=True),
        variable=F("variable"),
        next=F("node_ref"),
        confirm=F("bool"),
        confirm_prompt=F("prompts"),
        number_prompt=F("prompts"),
        invalid_prompt=F("prompts"),
        timeout=F("seconds"),
        retries=F("count_or_zero"),
        on_failure=F("node_ref"),
    ),
    "goto": _spec(target=F("node_ref"), flow=F("flow_ref")),
    "hangup": _spec(prompt=F("prompts"), reason=F("hangup_reason")),
})

SCHEDULE_FIELDS = _spec(
    timezone=F("timezone", required=True),
    hours=F("weekly_hours", required=True),
    holidays=F("holidays"),
    description=F("text"),
)

HOLIDAY_FIELDS = _spec(date=F("date", required=True), hours=F("time_ranges"), name=F("text"))

RULE_FIELDS = _spec(when=F("condition", required=True), goto=F("node_ref", required=True))

# Condition mappings are checked by shape (one of these forms), see read_structs.StructKinds.kind_condition.
CONDITION_FORMS = ("var", "schedule", "all", "any", "not")
SCHEDULE_CONDITION_FIELDS = _spec(schedule=F("schedule_ref", required=True), **{"is": F("open_closed")})

# Media URI schemes a prompt may use (what ARI's play accepts and makes sense in an IVR).
MEDIA_SCHEMES = ("sound", "recording", "digits", "number", "characters", "tone")

# Hangup causes ARI accepts on DELETE /channels/{id}?reason=
HANGUP_REASONS = ("normal", "busy", "congestion", "no_answer", "rejected", "unallocated")

# The ACD's outcomes as a flow sees them (``ivr.acd.record.CallOutcome.flow_result``; the flow core imports
# nothing outside ivr.flow, so a unit test holds the two lists together)
QUEUE_OUTCOMES = ("answered", "timeout", "no_agents", "full", "abandoned")

TRANSFER_OUTCOMES = ("answered", "busy", "no_answer", "failed")
