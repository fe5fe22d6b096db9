"""Business rules on customer data: repeat callers, first-contact resolution, routing hints.

What it is for:

* ``is_repeat_caller`` / ``last_agent``: from a caller's interaction history.
* ``fcr``: first-contact resolution. A call counts as resolved first time if
  the same customer (customer id when known, else the number) does not call
  again within the window. A call whose window has not elapsed yet is
  undecided (``None``), and is left out of the rate.
* ``contact_quality``: per queue over a report window, first-contact
  resolution of answered calls and the repeat-caller rate (exported as
  ``ivr_queue_first_contact_*`` / ``ivr_queue_repeat_*`` metrics).
* ``routing_from_dict`` -> ``RoutingPolicy``: turns a ``LookupResult`` into
  ``RoutingHints`` (priority boost, extra skills, prompt language, tier-2 queue,
  preferred agent) from YAML, so what "VIP" means is configuration, not code.

Pure module: no asyncio, aiohttp or sqlite3. Time is passed in (``now``, epoch
seconds), never read from the system clock here.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from ivr.crm.errors import CrmConfigError
from ivr.crm.model import Interaction, LookupResult

from .errors import check_keys

__all__ = [
    "NEUTRAL_HINTS",
    "FcrReport",
    "QueueContactQuality",
    "RoutingHints",
    "RoutingPolicy",
    "TierRule",
    "contact_quality",
    "fcr",
    "is_repeat_caller",
    "last_agent",
    "routing_from_dict",
]


# --------------------------------------------------------------------------- history rules


# Only calls are contacts: entries of another kind (a task's steps: ``InteractionKind.TASK``) are in the
# customer's history for the agent to read, and ignored by every rule below.


def is_repeat_caller(history: Iterable[Interaction], now: float, window_seconds: float) -> bool:
    """True if any earlier call happened within ``window_seconds`` before ``now`` (task steps ignored)."""
    lo = now - window_seconds
    return any(lo <= i.at <= now for i in history if i.is_call)


def last_agent(history: Iterable[Interaction]) -> str | None:
    """The agent of the most recent call that reached an agent (task steps ignored: an offer the agent
    did not take is no service)."""
    best: Interaction | None = None
    for i in history:
        if i.is_call and i.agent_id and (best is None or i.at > best.at):
            best = i
    return best.agent_id if best else None


@dataclass(frozen=True, slots=True)
class FcrReport:
    """Per-call verdicts in input order (True resolved, False called back, None undecided)."""

    per_call: tuple[bool | None, ...]
    resolved: int
    decided: int

    @property
    def rate(self) -> float | None:
        """Share of decided calls resolved first time; None when nothing is decided yet."""
        return self.resolved / self.decided if self.decided else None


def fcr(
    interactions: Sequence[Interaction],
    window_seconds: float,
    now: float,
    eligible: Callable[[Interaction], bool] | None = None,
) -> FcrReport:
    """First-contact resolution of each call.

    A call by identity X at time t is *not resolved* if X calls again in
    ``(t, t + window]``; *resolved* if not and ``now >= t + window``; else
    undecided. Calls with no identity (withheld number, no customer) and calls
    ``eligible`` rejects (e.g. abandoned in queue) are ``None``; later calls
    still count as call-backs for earlier ones whatever their eligibility.
    Entries that are not calls (a task's steps) are ``None`` and never count as
    a call-back.
    """
    if window_seconds <= 0:
        raise CrmConfigError("window_seconds must be > 0")
    by_identity: dict[str, list[float]] = defaultdict(list)
    for i in interactions:
        if i.identity is not None and i.is_call:
            by_identity[i.identity].append(i.at)
    for times in by_identity.values():
        times.sort()

    verdicts: list[bool | None] = []
    resolved = decided = 0
    for i in interactions:
        ident = i.identity
        if ident is None or not i.is_call or (eligible is not None and not eligible(i)):
            verdicts.append(None)
            continue
        called_back = any(i.at < t <= i.at + window_seconds for t in by_identity[ident])
        if called_back:
            verdict: bool | None = False
        elif now >= i.at + window_seconds:
            verdict = True
        else:
            verdict = None
        if verdict is not None:
            decided += 1
            resolved += verdict
        verdicts.append(verdict)
    return FcrReport(tuple(verdicts), resolved, decided)


@dataclass(frozen=True, slots=True)
class QueueContactQuality:
    """One queue over a report window (see ``contact_quality``)."""

    queue: str
    resolved: int = 0  # answered calls whose caller did not call again within the repeat window
    called_back: int = 0  # answered calls followed by another call from the same caller within it
    first_calls: int = 0  # calls that reached the queue, the caller's first within the repeat window
    repeat_calls: int = 0  # calls that reached the queue from a caller who had called within it before

    @property
    def first_contact_resolution(self) -> float | None:
        decided = self.resolved + self.called_back
        return self.resolved / decided if decided else None

    @property
    def repeat_caller_rate(self) -> float | None:
        calls = self.first_calls + self.repeat_calls
        return self.repeat_calls / calls if calls else None


def contact_quality(
    interactions: Iterable[Interaction], now: float, window_seconds: float, repeat_window_seconds: float
) -> dict[str, QueueContactQuality]:
    """First-contact resolution and repeat-caller rate per queue, over a report window ``W`` (epoch seconds).

    With ``R`` the repeat window (``crm.repeat_window_hours``):

    * **first-contact resolution**: the calls *answered* in the queue whose call-back window closed within
      the report window (``now - R - W < at <= now - R``: every one of them is decided), by ``fcr``'s
      rule: resolved unless the same caller called again (any DID, queue or outcome) within ``R`` after.
    * **repeat-caller rate**: the calls that reached the queue (any outcome) with ``now - W < at <= now``;
      a call is a repeat if the same caller had called (anything) within ``R`` before it.

    Give every interaction with ``at > now - W - R`` (earlier ones are ignored). Calls without identity
    (withheld number, unknown customer) count in neither; entries that are not calls (a task's steps) are
    ignored. Pure: ``now`` is passed in.
    """
    if window_seconds <= 0 or repeat_window_seconds <= 0:
        raise CrmConfigError("window_seconds and repeat_window_seconds must be > 0")
    w, r = float(window_seconds), float(repeat_window_seconds)
    calls = sorted((i for i in interactions if i.is_call and now - w - r < i.at <= now), key=lambda i: i.at)
    times: dict[str, list[float]] = defaultdict(list)
    for i in calls:
        if i.identity is not None:
            times[i.identity].append(i.at)
    out: dict[str, dict[str, int]] = {}

    def row(q: str) -> dict[str, int]:
        return out.setdefault(q, {"resolved": 0, "called_back": 0, "first_calls": 0, "repeat_calls": 0})

    fcr_lo, fcr_hi = now - r - w, now - r
    for i in calls:
        if not i.queue or i.identity is None:
            continue
        mine = times[i.identity]
        if fcr_lo < i.at <= fcr_hi and i.outcome == "answered":
            after = any(i.at < t <= i.at + r for t in mine)
            row(i.queue)["called_back" if after else "resolved"] += 1
        if i.at > now - w:
            before = any(i.at - r <= t < i.at for t in mine)
            row(i.queue)["repeat_calls" if before else "first_calls"] += 1
    return {q: QueueContactQuality(q, **v) for q, v in sorted(out.items())}


# --------------------------------------------------------------------------- routing policy


def _ro(d: Mapping[str, int] | None) -> Mapping[str, int]:
    return MappingProxyType(dict(d or {}))


@dataclass(frozen=True)
class RoutingHints:
    """What the ACD should do differently for this caller. Neutral values change nothing.

    ``extra_skills`` maps skill -> minimum level (1-5, the ACD's scale), to be
    merged (max) into the queue's own requirements; the queue's relaxation steps
    relax them like the queue's, except languages (``lang:*``: hard, see docs/acd.md). ``preferred_agent`` should be offered the call
    exclusively for ``preferred_seconds`` before normal routing. ``queue_override``
    sends the call to another queue (e.g. tier 2) when set.
    """

    priority_boost: int = 0
    extra_skills: Mapping[str, int] = field(default_factory=dict)
    language: str | None = None
    preferred_agent: str | None = None
    preferred_seconds: float = 0.0
    queue_override: str | None = None
    flags: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        object.__setattr__(self, "extra_skills", _ro(self.extra_skills))
        object.__setattr__(self, "flags", frozenset(self.flags))


NEUTRAL_HINTS = RoutingHints()


@dataclass(frozen=True)
class TierRule:
    priority_boost: int = 0
    skills: Mapping[str, int] = field(default_factory=dict)
    queue: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "skills", _ro(self.skills))


@dataclass(frozen=True)
class RoutingPolicy:
    tiers: Mapping[str, TierRule] = field(default_factory=dict)
    default_tier: str | None = None
    # language
    language_skill_template: str | None = "lang:{lang}"  # the ACD folds agent languages into lang:<code>
    language_min_level: int = 1
    default_language: str | None = None
    supported_languages: frozenset[str] | None = None
    set_prompt_language: bool = True
    # repeat caller
    repeat: TierRule | None = None
    # preferred agent
    use_owner: bool = True
    use_last_agent: bool = False
    preferred_seconds: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "tiers", MappingProxyType(dict(self.tiers)))

    def hints(self, result: LookupResult) -> RoutingHints:
        """Routing hints for a lookup; an unknown or failed lookup gives neutral hints
        (apart from the repeat-caller rule, which only needs the history)."""
        boost = 0
        skills: dict[str, int] = {}
        flags: set[str] = set()
        queue: str | None = None
        language: str | None = None
        preferred: str | None = None

        def apply(rule: TierRule) -> None:
            nonlocal boost, queue
            boost += rule.priority_boost
            for skill, level in rule.skills.items():
                skills[skill] = max(level, skills.get(skill, 0))
            if rule.queue:
                queue = rule.queue

        customer = result.customer if result.found else None
        if customer is not None:
            flags.add("known")
            tier = (customer.tier or "").strip().lower()
            rule = self.tiers.get(tier)
            if rule is None and self.default_tier is not None:
                rule = self.tiers.get(self.default_tier)
            if tier:
                flags.add(f"tier:{tier}")
            if rule is not None:
                apply(rule)

            lang = _primary_language(customer.language)
            if (
                lang
                and lang != self.default_language
                and (self.supported_languages is None or lang in self.supported_languages)
            ):
                if self.language_skill_template:
                    skill = self.language_skill_template.format(lang=lang)
                    skills[skill] = max(self.language_min_level, skills.get(skill, 0))
                if self.set_prompt_language:
                    language = lang
                flags.add(f"lang:{lang}")

            if self.use_owner and customer.preferred_agent:
                preferred = customer.preferred_agent
                flags.add("owner")

        if result.repeat_caller:
            flags.add("repeat")
            if self.repeat is not None:
                apply(self.repeat)

        if preferred is None and self.use_last_agent and result.last_agent:
            preferred = result.last_agent
            flags.add("last_agent")

        return RoutingHints(
            priority_boost=boost,
            extra_skills=skills,
            language=language,
            preferred_agent=preferred,
            preferred_seconds=self.preferred_seconds if preferred else 0.0,
            queue_override=queue,
            flags=frozenset(flags),
        )


_LANG_RE = re.compile(r"^[a-z]{2,3}$")


def _primary_language(tag: str | None) -> str | None:
    """``fr-CA`` -> ``fr``; None for anything that is not a language tag."""
    if not tag:
        return None
    primary = re.split(r"[-_]", tag.strip(), maxsplit=1)[0].lower()
    return primary if _LANG_RE.match(primary) else None


# --------------------------------------------------------------------------- config parsing


_check_keys = check_keys


def _int(where: str, v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise CrmConfigError(f"{where}: expected an integer, got {v!r}")
    return v


def _bool(where: str, v: Any) -> bool:
    if not isinstance(v, bool):
        raise CrmConfigError(f"{where}: expected true or false, got {v!r}")
    return v


def _skills(where: str, v: Any) -> dict[str, int]:
    """``{skill: level}`` or a list of skill names (level 1)."""
    if v is None:
        return {}
    if isinstance(v, list):
        return {str(s): 1 for s in v}
    if not isinstance(v, Mapping):
        raise CrmConfigError(f"{where}: expected {{skill: min_level}} or a list of skills")
    out = {}
    for k, lvl in v.items():
        out[str(k)] = _level(f"{where}.{k}", lvl)
    return out


#: The ACD's proficiency scale (``ivr.acd.agent.SKILL_MIN``/``SKILL_MAX``; agents, queues and flows use it too).
LEVEL_MIN, LEVEL_MAX = 1, 5


def _level(where: str, v: Any) -> int:
    """A required-skill level on the ACD's 1-5 scale (refused, not clamped: 0 or 80 is a typo)."""
    lvl = _int(where, v)
    if not LEVEL_MIN <= lvl <= LEVEL_MAX:
        raise CrmConfigError(f"{where}: level must be {LEVEL_MIN}..{LEVEL_MAX} (the ACD's proficiency scale), "
                             f"got {lvl}")
    return lvl


def _tier_rule(where: str, d: Any) -> TierRule:
    d = _check_keys(where, d, {"priority_boost", "skills", "queue"})
    queue = d.get("queue")
    if queue is not None and not isinstance(queue, str):
        raise CrmConfigError(f"{where}.queue: expected a string")
    return TierRule(
        priority_boost=_int(f"{where}.priority_boost", d.get("priority_boost", 0)),
        skills=_skills(f"{where}.skills", d.get("skills")),
        queue=queue or None,
    )


def routing_from_dict(d: Mapping[str, Any] | None) -> RoutingPolicy:
    """Build a ``RoutingPolicy`` from the ``routing:`` section (see config/crm/routing.yaml).

    Accepts either the section itself or a document with a top-level ``routing`` key.
    Unknown keys raise ``CrmConfigError`` (a ValueError) naming the key and where it was.
    """
    if d is not None and isinstance(d, Mapping) and set(d) == {"routing"}:
        d = d["routing"]
    d = _check_keys("routing", d, {"tiers", "default_tier", "language", "repeat_caller", "preferred_agent"})

    tiers_raw = d.get("tiers") or {}
    if not isinstance(tiers_raw, Mapping):
        raise CrmConfigError("routing.tiers: expected {tier_name: {priority_boost, skills, queue}}")
    tiers = {str(name).lower(): _tier_rule(f"routing.tiers.{name}", rule) for name, rule in tiers_raw.items()}
    default_tier = d.get("default_tier")
    if default_tier is not None:
        default_tier = str(default_tier).lower()
        if default_tier not in tiers:
            raise CrmConfigError(
                f"routing.default_tier: {default_tier!r} is not one of routing.tiers {sorted(tiers)}"
            )

    lang = _check_keys(
        "routing.language",
        d.get("language"),
        {"skill_template", "min_level", "default", "supported", "set_prompt"},
    )
    template = lang.get("skill_template", "lang:{lang}")
    if template is not None:
        if not isinstance(template, str) or "{lang}" not in template:
            raise CrmConfigError(
                "routing.language.skill_template: must be a string containing '{lang}' (or null)"
            )
        try:
            template.format(lang="xx")
        except (KeyError, IndexError, ValueError) as exc:
            raise CrmConfigError(
                f"routing.language.skill_template: only '{{lang}}' may be used ({exc})"
            ) from None
    supported = lang.get("supported")
    if supported is not None:
        if not isinstance(supported, list):
            raise CrmConfigError("routing.language.supported: expected a list of language codes")
        supported = frozenset(str(s).lower() for s in supported)
    default_language = lang.get("default")
    min_level = _level("routing.language.min_level", lang.get("min_level", 1))

    repeat_raw = d.get("repeat_caller")
    repeat = _tier_rule("routing.repeat_caller", repeat_raw) if repeat_raw is not None else None

    pref = _check_keys(
        "routing.preferred_agent", d.get("preferred_agent"), {"use_owner", "use_last_agent", "seconds"}
    )
    seconds = pref.get("seconds", 20 if pref else 0)
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 0:
        raise CrmConfigError("routing.preferred_agent.seconds: expected a number >= 0")

    return RoutingPolicy(
        tiers=tiers,
        default_tier=default_tier,
        language_skill_template=template,
        language_min_level=min_level,
        default_language=str(default_language).lower() if default_language else None,
        supported_languages=supported,
        set_prompt_language=_bool("routing.language.set_prompt", lang.get("set_prompt", True)),
        repeat=repeat,
        use_owner=_bool("routing.preferred_agent.use_owner", pref.get("use_owner", True)),
        use_last_agent=_bool("routing.preferred_agent.use_last_agent", pref.get("use_last_agent", False)),
        preferred_seconds=float(seconds),
    )
