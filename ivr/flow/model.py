"""The flow language as typed, immutable data: what the loader builds and the engine runs.

A ``Flow`` is one YAML file: a name, an entry node, nodes by name, schedules and a default
language. A ``FlowSet`` is an immutable snapshot of every flow loaded together; a call
keeps the snapshot it started with, and a hot reload builds and swaps a new one.

Node classes carry the YAML key names as field names (``PlayNode.next`` is ``next:``),
so the schema in ``schema.py`` and these classes line up one to one. Defaults live here.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import ClassVar

from .conditions import Condition, needs_customer
from .schedule import Schedule

DTMF_KEYS = "0123456789*#ABCD"
ANY_LANGUAGE = ""          # the variant key of a prompt written without languages
DEFAULT_GOODBYE = "sound:vm-goodbye"
RESERVED_VARIABLES = ("caller", "did", "channel_id", "language", "customer")


@dataclass(frozen=True, slots=True)
class SourcePos:
    """Where something was written: 1-based line and column."""

    file: str
    line: int
    col: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


NOWHERE = SourcePos("<built-in>", 0, 0)


class Secret:
    """A value collected by a ``secure`` step: usable by the engine, never printed.

    ``str``, ``repr`` and ``format`` all give ``***``; only ``reveal()`` returns the digits.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    def __str__(self) -> str:
        return "***"

    def __format__(self, spec: str) -> str:
        return "***"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", self._value))

    def __reduce__(self):  # pickling would carry the digits somewhere unknown
        raise TypeError("a Secret cannot be pickled")


@dataclass(frozen=True)
class Prompt:
    """One media item to play, possibly with per-language variants.

    ``variants`` pairs a language (``""`` for a prompt written without languages) with a
    media URI template such as ``sound:hello-world`` or ``digits:{account}``.
    """

    variants: tuple[tuple[str, str], ...]
    pos: SourcePos = field(default=NOWHERE, compare=False, repr=False)

    @classmethod
    def of(cls, media: str) -> Prompt:
        return cls(((ANY_LANGUAGE, media),))

    @property
    def languages(self) -> tuple[str, ...]:
        return tuple(lang for lang, _ in self.variants if lang != ANY_LANGUAGE)

    def choose(self, language: str, default_language: str) -> str:
        """The call's language, then its base (``fr`` for ``fr_CA``), then the flow's, then any."""
        table = dict(self.variants)
        base = re.split(r"[-_]", language, maxsplit=1)[0]
        for key in (language, base, default_language, ANY_LANGUAGE):
            if key in table:
                return table[key]
        return self.variants[0][1]


Prompts = tuple[Prompt, ...]


@dataclass(frozen=True, kw_only=True)
class Node:
    name: str
    description: str = ""
    pos: SourcePos = field(default=NOWHERE, compare=False, repr=False)

    kind: ClassVar[str] = ""
    # True for nodes that wait for the caller or an external result; a cycle made only of
    # nodes where this is False would spin (or talk) forever, so the validator rejects it.
    waits_for_caller: ClassVar[bool] = False


@dataclass(frozen=True, kw_only=True)
class PlayNode(Node):
    kind: ClassVar[str] = "play"
    prompt: Prompts
    next: str
    barge_in: bool = False


@dataclass(frozen=True, kw_only=True)
class MenuNode(Node):
    kind: ClassVar[str] = "menu"
    waits_for_caller: ClassVar[bool] = True
    prompt: Prompts
    options: tuple[tuple[str, str], ...]     # (DTMF key, target node)
    timeout: float = 5.0
    max_attempts: int = 3
    invalid_prompt: Prompts = ()
    timeout_prompt: Prompts = ()
    on_invalid: str | None = None
    on_timeout: str | None = None
    barge_in: bool = True

    def target_for(self, key: str) -> str | None:
        return dict(self.options).get(key)


@dataclass(frozen=True, kw_only=True)
class CollectNode(Node):
    kind: ClassVar[str] = "collect"
    waits_for_caller: ClassVar[bool] = True
    variable: str
    next: str
    prompt: Prompts = ()
    min_length: int = 1
    max_length: int = 20
    terminator: str | None = "#"
    first_digit_timeout: float = 5.0
    inter_digit_timeout: float = 3.0
    pattern: re.Pattern[str] | None = None
    retries: int = 2
    invalid_prompt: Prompts = ()
    timeout_prompt: Prompts = ()
    on_failure: str | None = None
    secure: bool = False
    barge_in: bool = True


@dataclass(frozen=True)
class Rule:
    when: Condition
    goto: str


@dataclass(frozen=True, kw_only=True)
class BranchNode(Node):
    kind: ClassVar[str] = "branch"
    rules: tuple[Rule, ...]
    default: str
    customer_wait: float | None = None       # None: the flow's customer_wait

    @property
    def needs_customer(self) -> bool:
        return any(needs_customer(rule.when) for rule in self.rules)


@dataclass(frozen=True, kw_only=True)
class SetNode(Node):
    kind: ClassVar[str] = "set"
    variables: tuple[tuple[str, str], ...]   # (name, value template)
    next: str


@dataclass(frozen=True, kw_only=True)
class QueueNode(Node):
    kind: ClassVar[str] = "queue"
    waits_for_caller: ClassVar[bool] = True
    queue: str
    required_skills: tuple[tuple[str, int], ...] = ()
    optional_skills: tuple[tuple[str, int], ...] = ()
    priority: int = 0
    max_wait: float | None = None
    on_answered: str | None = None
    on_timeout: str | None = None
    on_no_agents: str | None = None
    on_full: str | None = None


@dataclass(frozen=True, kw_only=True)
class TransferNode(Node):
    kind: ClassVar[str] = "transfer"
    waits_for_caller: ClassVar[bool] = True   # waits for the target to answer or fail
    destination: str | None = None           # an internal extension or PJSIP/<endpoint>
    number: str | None = None                # an outside number, dialled through ``trunk``
    trunk: str | None = None                 # None: the only configured trunk
    timeout: float = 30.0                    # seconds the target may ring
    on_failure: str | None = None            # None: polite hang-up

    @property
    def target(self) -> str:
        """What the path and logs show: the extension, or ``external`` (numbers are never shown)."""
        return self.destination if self.destination is not None else "external"


@dataclass(frozen=True, kw_only=True)
class VoicemailNode(Node):
    kind: ClassVar[str] = "voicemail"
    waits_for_caller: ClassVar[bool] = True
    mailbox: str
    prompt: Prompts = ()
    max_seconds: int = 120
    beep: bool = True
    next: str | None = None


@dataclass(frozen=True, kw_only=True)
class CallbackNode(Node):
    kind: ClassVar[str] = "callback"
    queue: str
    variable: str | None = None              # None: the caller's number
    next: str | None = None
    #: Ask the caller to confirm the number (1) or type another (2) before requesting the callback.
    confirm: bool = False
    #: "the number ending 1234: if correct press 1, press 2 to enter another" (``callback_number_end``
    #: is the engine's variable holding the last four digits)
    confirm_prompt: Prompts = (Prompt.of("sound:telephone-number"), Prompt.of("digits:{callback_number_end}"),
                               Prompt.of("sound:if-correct-press"), Prompt.of("digits:1"),
                               Prompt.of("sound:vm-press"), Prompt.of("digits:2"),
                               Prompt.of("sound:vm-toenternumber"))
    number_prompt: Prompts = (Prompt.of("sound:vm-enter-num-to-call"),)
    invalid_prompt: Prompts = (Prompt.of("sound:pbx-invalid"),)
    #: seconds to wait for the key / for each digit of a typed number (ended by #)
    timeout: float = 6.0
    retries: int = 2
    #: where to go when the caller neither confirms nor types a usable number (default: polite hang-up,
    #: nothing requested)
    on_failure: str | None = None
    barge_in: ClassVar[bool] = True


@dataclass(frozen=True, kw_only=True)
class GotoNode(Node):
    kind: ClassVar[str] = "goto"
    target: str | None = None
    flow: str | None = None


@dataclass(frozen=True, kw_only=True)
class HangupNode(Node):
    kind: ClassVar[str] = "hangup"
    waits_for_caller: ClassVar[bool] = True   # the flow ends here
    prompt: Prompts = ()
    reason: str = "normal"


NODE_CLASSES: Mapping[str, type[Node]] = MappingProxyType(
    {cls.kind: cls for cls in (PlayNode, MenuNode, CollectNode, BranchNode, SetNode, QueueNode,
                               TransferNode, VoicemailNode, CallbackNode, GotoNode, HangupNode)}
)


def _read_only(mapping: Mapping) -> Mapping:
    return mapping if isinstance(mapping, MappingProxyType) else MappingProxyType(dict(mapping))


@dataclass(frozen=True, kw_only=True)
class Flow:
    name: str
    entry: str
    nodes: Mapping[str, Node]
    language: str = "en"
    schedules: Mapping[str, Schedule] = field(default_factory=dict)
    customer_wait: float = 1.0
    goodbye_prompt: Prompts = (Prompt.of(DEFAULT_GOODBYE),)
    description: str = ""
    file: str = "<string>"

    def __post_init__(self) -> None:
        object.__setattr__(self, "nodes", _read_only(self.nodes))
        object.__setattr__(self, "schedules", _read_only(self.schedules))


@dataclass(frozen=True)
class FlowSet:
    """Every flow of one load, by name. Immutable: reloading builds a new FlowSet."""

    flows: Mapping[str, Flow]
    version: str = ""          # content hash of the files, to log which snapshot a call used

    def __post_init__(self) -> None:
        object.__setattr__(self, "flows", _read_only(self.flows))

    def __getitem__(self, name: str) -> Flow:
        return self.flows[name]

    def __contains__(self, name: object) -> bool:
        return name in self.flows

    def __iter__(self) -> Iterator[str]:
        return iter(self.flows)

    def __len__(self) -> int:
        return len(self.flows)

    def get(self, name: str) -> Flow | None:
        return self.flows.get(name)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(sorted(self.flows))

    def for_file(self, path: str) -> Flow | None:
        """The flow loaded from ``path`` (compared as given to the loader)."""
        return next((f for f in self.flows.values() if f.file == path), None)


@dataclass(frozen=True)
class Destinations:
    """What a transfer node may name, from the server config: internal destinations (extension names and
    ``PJSIP/<endpoint>`` of the configured phones) and outbound trunk names."""

    internal: frozenset[str] = frozenset()
    trunks: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Reference:
    """A name used somewhere in a flow file, for the validator to check.

    ``kind`` is ``node``, ``flow``, ``queue``, ``schedule``, ``sound``, ``template_var``
    or ``secure_var``; ``owner`` is the node holding it (None at flow level, e.g. ``entry``).
    """

    kind: str
    name: str
    pos: SourcePos
    owner: str | None = None
