"""What the definition routes (POST/PUT /api/agents, /api/queues) accept, checked before anything changes,
and how the live configuration's refusals become API errors (stable ids, docs/api.md).

The ACD's own readers (``agent_from_dict``, ``queue_from_dict``) check levels, relaxation and overflows;
this module refuses what they would coerce silently (``str()`` of anything), unknown keys, and sizes no
contact center needs (bounded lists, names and numbers), so hostile input is a 400 and never reaches them.
"""

from __future__ import annotations

import math
import re
from typing import Any

from ..acd.errors import ConfigError, DuplicateId, UnknownAgent, UnknownQueue
from ..acd.reconfig import AgentBusy, PhoneConflict, QueueInUse
from ..ari import AriError
from .deps import AcdView, ConfigEditor
from .errors import ApiError, bad_request, not_found, printable

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,39}\Z")       # agent ids, queue names (SIP user, metrics)
SKILL = re.compile(r"[A-Za-z0-9][A-Za-z0-9_:.-]{0,39}\Z")
LANGUAGE = re.compile(r"[a-z]{2,3}(-[A-Za-z0-9]{2,8})?\Z")
ENDPOINT = re.compile(r"PJSIP/[A-Za-z0-9][A-Za-z0-9_-]{0,39}\Z")
SIP_PASSWORD = re.compile(r"[A-Za-z0-9!#$%&()*+,./:<=>?@\[\]^_{|}~-]{8,64}\Z")
TEXT_MAX = 64
LIST_MAX = 50
SECONDS_MAX = 86400.0

AGENT_KEYS = frozenset({"id", "name", "endpoint", "skills", "languages", "team", "queues", "wrap_up",
                        "max_misses", "sip_password", "phone", "login"})
QUEUE_KEYS = frozenset({
    "name", "required_skills", "optional_skills", "min_proficiency", "priority", "relaxation", "max_wait",
    "max_length", "on_timeout", "on_full", "on_no_agents", "join_empty", "leave_when_empty", "ring_timeout",
    "max_misses", "retry", "wrap_up", "moh_class", "announce_frequency", "announce_position",
    "announce_hold_time", "service_level", "short_abandon", "overflow", "no_agents_grace", "task_agents_percent"})


def editor_of(acd: AcdView | None) -> ConfigEditor:
    """The live configuration; 503 ``acd-disabled`` when the app has no ACD (no queue at start)."""
    editor = acd.live_config if acd is not None else None
    if editor is None:
        raise ApiError(503, "acd-disabled", "no ACD: the app started with no queue (add one to config/ivr.yaml "
                                            "and restart; docs/acd.md)")
    return editor


def config_error(kind: str, e: Exception) -> ApiError:
    """A refusal of the live configuration as an API error (anything else is a bug: re-raised)."""
    if isinstance(e, UnknownQueue):
        return bad_request(f"invalid-{kind}", f"unknown queue {printable(e.args[0] if e.args else '')}")
    if isinstance(e, ConfigError):
        return bad_request(f"invalid-{kind}", str(e)[:300])
    if isinstance(e, DuplicateId):
        return ApiError(409, f"{kind}-exists", str(e))
    if isinstance(e, AgentBusy):
        return ApiError(409, "agent-busy", str(e))
    if isinstance(e, PhoneConflict):
        return ApiError(409, "agent-conflict", str(e))
    if isinstance(e, QueueInUse):
        return ApiError(409, "queue-in-use", str(e)[:300], details={"in_use": e.reasons})
    if isinstance(e, UnknownAgent):
        return not_found("agent", str(e.args[0] if e.args else ""))
    if isinstance(e, AriError):
        return ApiError(503, "asterisk-unavailable", "Asterisk did not take the agent's phone; nothing changed")
    raise e


def _bad(kind: str, message: str) -> ApiError:
    return bad_request(f"invalid-{kind}", message)


def _text(kind: str, body: dict[str, Any], key: str, *, nullable: bool = True) -> None:
    v = body.get(key)
    if v is None and nullable:
        return
    if not isinstance(v, str) or not 0 < len(v) <= TEXT_MAX or not v.isprintable():
        raise _bad(kind, f"{key} must be a printable string of 1-{TEXT_MAX} characters")


def _names(kind: str, value: Any, key: str, pattern: re.Pattern[str] = NAME) -> None:
    if not isinstance(value, list) or len(value) > LIST_MAX or not all(
            isinstance(x, str) and pattern.match(x) for x in value):
        raise _bad(kind, f"{key} must be a list of at most {LIST_MAX} names")


def _number(kind: str, value: Any, key: str, *, integer: bool = False, low: float = 0,
            high: float = SECONDS_MAX, nullable: bool = True) -> None:
    if value is None and nullable:
        return
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or (integer and not isinstance(value, int)) or not low <= value <= high:
        raise _bad(kind, f"{key} must be {'an integer' if integer else 'a number'} from {low:g} to {high:g}")


def _skill_map(kind: str, value: Any, key: str, *, weights: bool = False) -> None:
    if isinstance(value, list):
        _names(kind, value, key, SKILL)
        return
    if not isinstance(value, dict) or len(value) > LIST_MAX:
        raise _bad(kind, f"{key} must be a mapping skill -> {'weight' if weights else 'level'} "
                         f"(at most {LIST_MAX}) or a list of skills")
    for s, lv in value.items():
        if not SKILL.match(s):
            raise _bad(kind, f"{key}: {printable(s)} is not a skill name")
        if weights:
            _number(kind, lv, f"{key}.{s}", high=100, nullable=False)
        elif lv is not None and (isinstance(lv, bool) or not isinstance(lv, int)):
            raise _bad(kind, f"{key}.{s} must be a level 1-5")


def check_agent_definition(body: dict[str, Any], *, creating: bool) -> None:
    """400 ``invalid-agent`` for anything an agent definition cannot be."""
    unknown = sorted(set(body) - AGENT_KEYS)
    if unknown:
        raise _bad("agent", f"unknown key(s) {', '.join(map(printable, unknown))}; allowed: "
                            f"{', '.join(sorted(AGENT_KEYS))}")
    if creating or "id" in body:
        aid = body.get("id")
        if not isinstance(aid, str) or not NAME.match(aid):
            raise _bad("agent", "id must be 1-40 letters, digits, '-' or '_' (starting with a letter or digit)")
    _text("agent", body, "name")
    _text("agent", body, "team")
    if "endpoint" in body and not (isinstance(body["endpoint"], str) and ENDPOINT.match(body["endpoint"])):
        raise _bad("agent", "endpoint must be PJSIP/<name>")
    if "skills" in body:
        _skill_map("agent", body["skills"], "skills")
    if "languages" in body:
        _names("agent", body["languages"], "languages", LANGUAGE)
    if body.get("queues") is not None:
        _names("agent", body["queues"], "queues")
    _number("agent", body.get("wrap_up"), "wrap_up")
    _number("agent", body.get("max_misses"), "max_misses", integer=True, low=1, high=100)
    pw = body.get("sip_password")
    if pw is not None and not (isinstance(pw, str) and SIP_PASSWORD.match(pw)):
        raise _bad("agent", "sip_password must be 8-64 letters, digits or punctuation (no spaces, quotes, "
                            "';' or '\\')")
    if body.get("phone", "sip") not in ("sip", "webrtc"):
        raise _bad("agent", "phone must be sip or webrtc")
    if not isinstance(body.get("login", True), bool):
        raise _bad("agent", "login must be true or false")


def check_queue_definition(body: dict[str, Any], *, creating: bool) -> None:
    """400 ``invalid-queue`` for anything a queue definition cannot be (the ACD checks the rest)."""
    unknown = sorted(set(body) - QUEUE_KEYS)
    if unknown:
        raise _bad("queue", f"unknown key(s) {', '.join(map(printable, unknown))}; allowed: "
                            f"{', '.join(sorted(QUEUE_KEYS))}")
    if creating or "name" in body:
        name = body.get("name")
        if not isinstance(name, str) or not NAME.match(name):
            raise _bad("queue", "name must be 1-40 letters, digits, '-' or '_' (starting with a letter or digit)")
    for key in ("required_skills", "optional_skills"):
        if body.get(key) is not None:
            _skill_map("queue", body[key], key, weights=key == "optional_skills")
    for key in ("on_timeout", "on_full", "on_no_agents", "moh_class"):
        _text("queue", body, key, nullable=key != "moh_class" or "moh_class" not in body)
    for key in ("max_wait", "ring_timeout", "retry", "wrap_up", "announce_frequency", "short_abandon",
                "no_agents_grace"):
        _number("queue", body.get(key), key, nullable=key not in ("ring_timeout", "retry", "wrap_up", "short_abandon")
                or key not in body)
    _number("queue", body.get("priority"), "priority", integer=True, low=-100, high=100)
    _number("queue", body.get("max_length"), "max_length", integer=True, low=1, high=100000)
    _number("queue", body.get("max_misses"), "max_misses", integer=True, low=1, high=100, nullable="max_misses" not in body)
    _number("queue", body.get("min_proficiency"), "min_proficiency", integer=True, low=1, high=5)
    _number("queue", body.get("task_agents_percent"), "task_agents_percent", high=100)
    for key in ("join_empty", "leave_when_empty", "announce_position", "announce_hold_time"):
        if key in body and not isinstance(body[key], bool):
            raise _bad("queue", f"{key} must be true or false")
    sl = body.get("service_level")
    if sl is not None:
        if not isinstance(sl, dict) or set(sl) - {"percent", "seconds"}:
            raise _bad("queue", "service_level must be {percent, seconds}")
        _number("queue", sl.get("percent"), "service_level.percent", high=100)
        _number("queue", sl.get("seconds"), "service_level.seconds")
    ov = body.get("overflow")
    if ov is not None:
        if not isinstance(ov, dict) or set(ov) - {"queue", "after"} or not isinstance(ov.get("queue"), str) \
                or not NAME.match(ov["queue"]):
            raise _bad("queue", "overflow must be {queue, after}")
        _number("queue", ov.get("after"), "overflow.after")
    steps = body.get("relaxation")
    if steps is not None:
        if not isinstance(steps, list) or len(steps) > 20 or not all(isinstance(st, dict) for st in steps):
            raise _bad("queue", "relaxation must be a list of at most 20 steps")
        for st in steps:
            _number("queue", st.get("after"), "relaxation.after", nullable=False)
            if st.get("drop_skills") is not None:
                _names("queue", st["drop_skills"], "relaxation.drop_skills", SKILL)
            _number("queue", st.get("min_proficiency"), "relaxation.min_proficiency", integer=True, low=1, high=5)
            if st.get("add_alternative") is not None:
                _skill_map("queue", st["add_alternative"], "relaxation.add_alternative")
