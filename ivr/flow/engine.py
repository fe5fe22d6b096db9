"""The flow interpreter: a pure state machine driven by events, emitting commands.

``FlowRunner`` does no I/O, no asyncio and no threads (h11-style): the call session feeds
it events (``protocol.py``) and carries out the commands it returns, in order. Time comes
from the injected ``clock``; timers are commands the session runs and reports back as
``TimerFired``. Playback, timer and recording ids are generated here (``pb-1``, ``t-1``,
``vm-<channel>-1``), so the same events always give the same commands.

Rules (one node at a time; "jump" = emit ``NodeEntered`` and enter the target node):

start()
    ``Answer``, then enter the entry node.
play
    ``Play(prompt)``; on its ``PlaybackFinished``: jump to ``next``. A digit during the
    prompt is ignored (type-ahead is dropped) unless ``barge_in: true``: then
    ``StopPlayback`` and jump to ``next``, keeping the digit as type-ahead for the next
    menu or collect. Entering a play node drops any older type-ahead.
menu
    ``Play(prompt)``; when it finishes ``StartTimer(timeout)``. A digit during the prompt
    (``barge_in``, the default) emits ``StopPlayback`` at once and is handled; with
    ``barge_in: false`` it is ignored. A digit while waiting emits ``CancelTimer`` and is
    handled: a listed key jumps to its target; any other key is an invalid attempt.
    ``TimerFired`` is a timeout attempt. After a failed attempt the menu is replayed,
    prefixed by ``invalid_prompt``/``timeout_prompt``; after ``max_attempts`` failed
    attempts in total it jumps to ``on_invalid``/``on_timeout`` (whichever failed last),
    or, without one, hangs up politely (goodbye prompt, then ``Hangup``).
collect
    ``Play(prompt)``; digits during the prompt count as the first digits (with
    ``barge_in``, the default). Then ``StartTimer(first_digit_timeout)``; each digit
    restarts an ``inter_digit_timeout`` timer. Input ends at the terminator, at
    ``max_length`` digits or on a timeout. Valid input (``min_length``..``max_length``
    digits, ``pattern`` matching the whole input) is stored in ``variable`` and jumps to
    ``next``; otherwise the prompt is replayed (after ``invalid_prompt``, or
    ``timeout_prompt`` when nothing was typed) up to ``retries`` more times, then
    ``on_failure`` or a polite hangup. With ``secure: true`` the value is kept as a
    ``Secret`` and the path shows ``var=***``.
branch
    Rules are tried in order, the first true one jumps, else ``default``. On reaching a
    rule that reads ``customer.*`` before any ``CustomerData`` arrived:
    ``StartTimer(customer_wait)`` and wait; ``CustomerData`` (``CancelTimer``) or
    ``TimerFired`` then evaluates all rules again with what is known (a missing field is
    an unknown caller). After one such timeout later branches do not wait again. Digits typed while
    waiting are kept as type-ahead (the first ``MAX_TYPEAHEAD``).
set
    Sets variables (templates allowed); ``language`` emits ``SetLanguage``. Then ``next``.
queue
    ``Enqueue``; the call belongs to the ACD until ``QueueResult``. ``answered`` means the
    agent conversation is over with the caller still there: jump to ``on_answered`` or
    ``Hangup`` (no goodbye prompt). ``timeout``/``no_agents``/``full`` jump to their
    target or hang up politely. ``abandoned`` ends the flow (no command).
transfer
    ``Transfer(destination, timeout, trunk, external)``; the call belongs to the session until
    ``TransferResult``: ``answered`` (the target answered and is bridged with the caller) ends the flow
    (``transferred``, no command: the session holds the conversation); ``busy``/``no_answer``/``failed``
    jump to ``on_failure`` or hang up politely. Digits while it rings are ignored.
voicemail
    Optional greeting ``Play``, then ``Record(name, max_seconds, beep)``. On
    ``RecordingFinished``: ``StoreVoicemail(mailbox, recording, caller, time)``, then
    ``next`` or a polite hangup. A caller hanging up while recording is the normal way to
    end a message: the flow ends, but the later ``RecordingFinished`` still emits
    ``StoreVoicemail`` (the only command ever emitted after the end). A recording shorter
    than ``MIN_MESSAGE_SECONDS`` (1 s: the caller hung up at the tone) is no message:
    ``DiscardRecording`` instead, and the path says ``<mailbox> (empty)``.
callback
    ``RequestCallback(queue, number)`` with the caller's number or ``variable``, then
    ``next`` or a polite hangup.
goto
    Jumps to ``target``, or to the entry node of flow ``flow`` (no return).
hangup
    Optional prompt, then ``Hangup(reason)``.

Always: a ``PlaybackFinished``/``TimerFired`` for an id that is not the current one, a
``QueueResult``/``RecordingFinished`` nobody waits for and every event after the end are
ignored. ``HungUp`` at any point emits ``CancelTimer`` for a running timer and
``FlowEnded("caller_hangup")``; then nothing else (playbacks die with the channel).
Every end emits ``FlowEnded(reason)`` once, after any ``Hangup``.
"""

from __future__ import annotations

import itertools
import re
from collections import deque
from collections.abc import Callable, Mapping
from datetime import datetime
from types import MappingProxyType
from typing import Any

from .conditions import CUSTOMER_PREFIX, MISSING, as_text, evaluate, needs_customer
from .model import (
    BranchNode,
    CallbackNode,
    CollectNode,
    Flow,
    FlowSet,
    GotoNode,
    HangupNode,
    MenuNode,
    Node,
    PlayNode,
    Prompts,
    QueueNode,
    Secret,
    SetNode,
    TransferNode,
    VoicemailNode,
)
from .protocol import (
    Answer,
    CallInfo,
    CancelTimer,
    Command,
    CustomerData,
    DigitReceived,
    DiscardRecording,
    Enqueue,
    Event,
    FlowEnded,
    Hangup,
    HungUp,
    NodeEntered,
    PathStep,
    Play,
    PlaybackFinished,
    QueueResult,
    Record,
    RecordingFinished,
    RequestCallback,
    SetLanguage,
    StartTimer,
    StopPlayback,
    StoreVoicemail,
    TimerFired,
    Transfer,
    TransferResult,
)
from .template import is_static, render

# Pass-through nodes entered without waiting, per event. The validator rejects loops
# without input; this only guards a FlowSet built by hand.
MAX_STEPS_PER_EVENT = 200
# A caller pressing keys for an hour must not grow a call without bound: type-ahead keeps this many digits,
# the path the first MAX_PATH_HEAD and the latest MAX_PATH_TAIL steps (with a ``skipped`` step between).
MAX_TYPEAHEAD = 32
#: A recording shorter than this (seconds) is not a voicemail: it is discarded, not stored.
MIN_MESSAGE_SECONDS = 1.0
MAX_PATH_HEAD = 200
MAX_PATH_TAIL = 300

_LANGUAGE_RE = re.compile(r"[a-z]{2,3}(?:[-_][A-Za-z0-9]{2,8})?\Z")
_UNSAFE_ID_CHARS = re.compile(r"[^A-Za-z0-9_.-]")
# A number a callback can be made to: ASCII digits with an optional '+' and the usual separators. A withheld
# caller ("anonymous"), a 10,000-character caller ID or an injection attempt is "no number".
_CALLBACK_NUMBER_RE = re.compile(r"\+?[0-9(][0-9 ().-]{2,31}\Z")
#: digits a caller may type as the number to be called back on (a national number at least)
CALLBACK_NUMBER_MIN, CALLBACK_NUMBER_MAX = 6, 15


def _callback_number_ok(number: str) -> bool:
    return _CALLBACK_NUMBER_RE.match(number) is not None and 3 <= sum(c.isdigit() for c in number) <= 20

Jump = tuple[Flow, str]


class FlowRunner:
    """Runs one call through a flow. See the module docstring for the rules."""

    def __init__(self, flowset: FlowSet, flow_name: str, call: CallInfo, clock: Callable[[], datetime]) -> None:
        if flow_name not in flowset:
            raise KeyError(f"no flow named {flow_name!r}")
        self._flowset = flowset
        self._flow: Flow = flowset[flow_name]
        self._call = call
        self._clock = clock
        self._node: Node | None = None
        # What the current node waits for: idle, prompt, input, customer, queue, recording,
        # goodbye, done.
        self._phase = "idle"
        self._variables: dict[str, Any] = dict(call.variables)
        self._customer: dict[str, Any] | None = None if call.customer_lookup else {}
        self._customer_gave_up = False
        self._language: str | None = call.language
        self._playback: str | None = None
        self._timer: str | None = None
        self._recording: str | None = None
        self._orphan_recording: tuple[str, str] | None = None    # (mailbox, recording) after a hangup
        self._playback_ids = itertools.count(1)
        self._timer_ids = itertools.count(1)
        self._recording_ids = itertools.count(1)
        self._attempts = 0
        self._digits: list[str] = []
        self._cb_number = ""                           # the callback node's number being confirmed
        self._cb_mode = ""                             # confirm | enter
        self._typeahead: list[str] = []
        self._goodbye = ("", "normal")     # (flow end reason, hangup cause) while saying goodbye
        self._path: list[PathStep] = []                                   # the first MAX_PATH_HEAD steps
        self._path_tail: deque[PathStep] = deque(maxlen=MAX_PATH_TAIL)    # then the latest ones
        self._path_steps = 0
        self._out: list[Command] = []
        self._started = False
        self._finished = False
        self._end_reason: str | None = None

    def __repr__(self) -> str:
        node = self._node.name if self._node else "-"
        return f"<FlowRunner {self._flow.name}:{node} phase={self._phase} finished={self._finished}>"

    # -- public state ----------------------------------------------------------------

    @property
    def path(self) -> tuple[PathStep, ...]:
        """Nodes visited and input given, in order; secure input shows as ``***``."""
        skipped = self._path_steps - len(self._path) - len(self._path_tail)
        gap = (PathStep("skipped", f"{skipped} steps"),) if skipped else ()
        return (*self._path, *gap, *self._path_tail)

    @property
    def path_steps(self) -> int:
        """How many steps the call has made in all (``path`` keeps the first and the latest ones)."""
        return self._path_steps

    @property
    def visited_nodes(self) -> tuple[str, ...]:
        return tuple(step.detail for step in self.path if step.kind == "node")

    @property
    def keys_pressed(self) -> str:
        """Menu keys and collected digits, in order; each secure input is ``***``."""
        out = []
        for step in self.path:
            if step.kind == "key":
                out.append(step.detail)
            elif step.kind == "input":
                out.append(step.detail.partition("=")[2])
        return "".join(out)

    @property
    def variables(self) -> Mapping[str, Any]:
        """Call variables (secure ones are ``Secret`` objects)."""
        return MappingProxyType(dict(self._variables))

    @property
    def customer(self) -> Mapping[str, Any] | None:
        """CRM fields received so far (without the ``customer.`` prefix); None if none yet."""
        return None if self._customer is None else MappingProxyType(dict(self._customer))

    @property
    def language(self) -> str:
        return self._language or self._flow.language

    @property
    def flow_name(self) -> str:
        return self._flow.name

    @property
    def node_name(self) -> str | None:
        return self._node.name if self._node else None

    @property
    def finished(self) -> bool:
        return self._finished

    @property
    def end_reason(self) -> str | None:
        return self._end_reason

    @property
    def active_playback(self) -> str | None:
        return self._playback

    @property
    def active_timer(self) -> str | None:
        return self._timer

    @property
    def recording_name(self) -> str | None:
        """The recording a voicemail node waits for (also after a hangup, see the docstring)."""
        if self._orphan_recording:
            return self._orphan_recording[1]
        return self._recording

    @property
    def waiting_for(self) -> str:
        """``playback``, ``input``, ``customer_data``, ``queue_result``, ``transfer_result``, ``recording`` or
        ``nothing``."""
        if self._finished:
            return "recording" if self._orphan_recording else "nothing"
        return {"prompt": "playback", "goodbye": "playback", "input": "input", "customer": "customer_data",
                "queue": "queue_result", "transfer": "transfer_result", "recording": "recording"}.get(self._phase, "nothing")

    @property
    def input_is_secure(self) -> bool:
        """True while digits go to a secure collect: the session must not log them."""
        return (not self._finished and isinstance(self._node, CollectNode) and self._node.secure
                and self._phase in ("prompt", "input"))

    # -- driving ---------------------------------------------------------------------

    def start(self) -> list[Command]:
        if self._started:
            raise RuntimeError("start() was already called")
        self._started = True
        self._out.append(Answer())
        self._go((self._flow, self._flow.entry))
        return self._flush()

    def feed(self, event: Event) -> list[Command]:
        if not self._started:
            raise RuntimeError("call start() before feed()")
        if isinstance(event, CustomerData):
            self._merge_customer(event.fields)
        if self._finished:
            if isinstance(event, RecordingFinished):
                self._store_orphan_recording(event)
            return self._flush()
        jump: Jump | None = None
        match event:
            case HungUp():
                self._caller_hung_up()
            case DigitReceived(digit=digit):
                jump = self._on_digit(digit)
            case PlaybackFinished(playback_id=playback_id):
                if playback_id == self._playback:
                    self._playback = None
                    jump = self._on_playback_finished()
            case TimerFired(timer_id=timer_id):
                if timer_id == self._timer:
                    self._timer = None
                    jump = self._on_timer()
            case QueueResult(outcome=outcome):
                if self._phase == "queue":
                    jump = self._on_queue_result(outcome)
            case TransferResult(outcome=outcome):
                if self._phase == "transfer":
                    jump = self._on_transfer_result(outcome)
            case RecordingFinished(name=name, duration=duration):
                if self._phase == "recording" and name == self._recording:
                    jump = self._on_recording_finished(duration)
            case CustomerData():
                if self._phase == "customer":
                    self._cancel_timer()
                    jump = self._evaluate_branch()
            case _:
                raise TypeError(f"not a flow event: {event!r}")
        self._go(jump)
        return self._flush()

    def _record(self, step: PathStep) -> None:
        self._path_steps += 1
        if len(self._path) < MAX_PATH_HEAD:
            self._path.append(step)
        else:
            self._path_tail.append(step)

    def _flush(self) -> list[Command]:
        out, self._out = self._out, []
        return out

    def _go(self, jump: Jump | None) -> None:
        steps = 0
        while jump is not None and not self._finished:
            steps += 1
            if steps > MAX_STEPS_PER_EVENT:
                self._hangup("normal", "loop_guard")
                return
            flow, name = jump
            node = flow.nodes.get(name)
            if node is None:
                self._hangup("normal", "flow_error")
                return
            self._flow, self._node = flow, node
            self._attempts = 0
            self._digits = []
            self._phase = "idle"
            self._out.append(NodeEntered(flow.name, name, node.kind))
            self._record(PathStep("node", f"{flow.name}:{name}"))
            jump = getattr(self, f"_enter_{node.kind}")(node)

    def _jump(self, target: str) -> Jump:
        return (self._flow, target)

    def _jump_or_goodbye(self, target: str | None, reason: str) -> Jump | None:
        if target is not None:
            return self._jump(target)
        self._say_goodbye(reason)
        return None

    # -- effects ---------------------------------------------------------------------

    def _text_of(self, name: str) -> str | None:
        value = self._lookup(name)
        if isinstance(value, Secret):   # never rendered anywhere
            return None
        return as_text(value)

    def _render(self, prompts: Prompts) -> tuple[str, ...]:
        media = []
        for prompt in prompts:
            uri = prompt.choose(self.language, self._flow.language)
            rendered = uri if is_static(uri) else render(uri, self._text_of)
            if rendered is not None:       # a prompt missing a variable is skipped
                media.append(rendered)
        return tuple(media)

    def _play(self, prompts: Prompts, barge_in: bool) -> bool:
        media = self._render(prompts)
        if not media:
            return False
        self._playback = f"pb-{next(self._playback_ids)}"
        self._out.append(Play(self._playback, media, barge_in))
        return True

    def _stop_playback(self) -> None:
        if self._playback is not None:
            self._out.append(StopPlayback(self._playback))
            self._playback = None

    def _start_timer(self, seconds: float) -> None:
        self._cancel_timer()
        self._timer = f"t-{next(self._timer_ids)}"
        self._out.append(StartTimer(self._timer, seconds))

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._out.append(CancelTimer(self._timer))
            self._timer = None

    def _wait_input(self, seconds: float) -> None:
        self._phase = "input"
        self._start_timer(seconds)

    def _finish(self, reason: str) -> None:
        self._cancel_timer()
        self._phase = "done"
        self._finished = True
        self._end_reason = reason
        self._typeahead.clear()
        self._record(PathStep("end", reason))
        self._out.append(FlowEnded(reason))

    def _hangup(self, cause: str, reason: str) -> None:
        self._cancel_timer()
        self._out.append(Hangup(cause))
        self._finish(reason)

    def _say_goodbye(self, reason: str, prompts: Prompts | None = None, cause: str = "normal") -> None:
        """Play the goodbye prompt (the flow's unless given), then hang up."""
        self._typeahead.clear()
        self._goodbye = (reason, cause)
        if self._play(self._flow.goodbye_prompt if prompts is None else prompts, False):
            self._phase = "goodbye"
        else:
            self._hangup(cause, reason)

    def _caller_hung_up(self) -> None:
        if self._phase == "recording" and self._recording is not None and isinstance(self._node, VoicemailNode):
            self._orphan_recording = (self._node.mailbox, self._recording)
        self._playback = None   # gone with the channel: nothing to stop
        self._finish("caller_hangup")

    # -- variables -------------------------------------------------------------------

    def _merge_customer(self, fields: Mapping[str, Any]) -> None:
        merged = dict(self._customer or {})
        for key, value in fields.items():
            merged[key.removeprefix(CUSTOMER_PREFIX)] = value
        self._customer = merged

    def _lookup(self, name: str) -> Any:
        if name == "caller":
            return self._call.caller or MISSING
        if name == "did":
            return self._call.did or MISSING
        if name == "channel_id":
            return self._call.channel_id
        if name == "language":
            return self.language
        if name.startswith(CUSTOMER_PREFIX):
            if self._customer is None:
                return MISSING
            return self._customer.get(name.removeprefix(CUSTOMER_PREFIX), MISSING)
        return self._variables.get(name, MISSING)

    def _schedule_open(self, name: str) -> bool:
        schedule = self._flow.schedules.get(name)
        return schedule is not None and schedule.is_open(self._clock())

    # -- events ----------------------------------------------------------------------

    def _on_digit(self, digit: str) -> Jump | None:
        node, phase = self._node, self._phase
        if phase == "customer":
            if len(self._typeahead) < MAX_TYPEAHEAD:     # a flood while the CRM answers is dropped
                self._typeahead.append(digit)
            return None
        if phase == "prompt":
            if not getattr(node, "barge_in", False):
                return None                       # documented: ignored, not queued
            self._stop_playback()
            if isinstance(node, PlayNode):
                self._typeahead.append(digit)
                return self._jump(node.next)
        elif phase == "input":
            self._cancel_timer()
        else:
            return None
        if isinstance(node, MenuNode):
            return self._menu_key(node, digit)
        if isinstance(node, CollectNode):
            self._phase = "input"
            return self._collect_digit(node, digit)
        if isinstance(node, CallbackNode):
            self._phase = "input"
            return self._callback_digit(node, digit)
        return None

    def _on_playback_finished(self) -> Jump | None:
        node = self._node
        if self._phase == "goodbye":
            reason, cause = self._goodbye
            self._hangup(cause, reason)
        elif isinstance(node, PlayNode):
            return self._jump(node.next)
        elif isinstance(node, MenuNode):
            self._wait_input(node.timeout)
        elif isinstance(node, CollectNode):
            self._wait_input(node.first_digit_timeout)
        elif isinstance(node, CallbackNode):
            self._wait_input(node.timeout)
        elif isinstance(node, VoicemailNode):
            self._start_recording(node)
        return None

    def _on_timer(self) -> Jump | None:
        node = self._node
        if self._phase == "customer":
            self._customer_gave_up = True
            return self._evaluate_branch()
        if self._phase != "input":
            return None
        if isinstance(node, MenuNode):
            self._record(PathStep("timeout"))
            return self._menu_retry(node, node.timeout_prompt, node.on_timeout, "no_input")
        if isinstance(node, CollectNode):
            return self._collect_finish(node)
        if isinstance(node, CallbackNode):
            if self._cb_mode == "enter" and self._digits:
                return self._callback_number_typed(node)
            self._record(PathStep("timeout"))
            return self._callback_retry(node)
        return None

    # -- nodes -----------------------------------------------------------------------

    def _enter_play(self, node: PlayNode) -> Jump | None:
        self._typeahead.clear()
        if self._play(node.prompt, node.barge_in):
            self._phase = "prompt"
            return None
        return self._jump(node.next)

    def _enter_menu(self, node: MenuNode) -> Jump | None:
        if self._typeahead:
            return self._menu_key(node, self._typeahead.pop(0))
        return self._menu_present(node, ())

    def _menu_present(self, node: MenuNode, before: Prompts) -> None:
        if self._play(before + node.prompt, node.barge_in):
            self._phase = "prompt"
        else:
            self._wait_input(node.timeout)

    def _menu_key(self, node: MenuNode, digit: str) -> Jump | None:
        self._record(PathStep("key", digit))
        target = node.target_for(digit)
        if target is not None:
            return self._jump(target)
        self._record(PathStep("invalid"))
        return self._menu_retry(node, node.invalid_prompt, node.on_invalid, "invalid_input")

    def _menu_retry(self, node: MenuNode, before: Prompts, target: str | None, reason: str) -> Jump | None:
        self._attempts += 1
        if self._attempts >= node.max_attempts:
            return self._jump_or_goodbye(target, reason)
        self._typeahead.clear()
        self._menu_present(node, before)
        return None

    def _enter_collect(self, node: CollectNode) -> Jump | None:
        if not self._typeahead:
            self._collect_present(node, ())
            return None
        typed, self._typeahead = self._typeahead, []
        self._phase = "input"
        for index, digit in enumerate(typed):
            self._cancel_timer()
            jump = self._collect_digit(node, digit)
            if jump is not None or self._phase != "input" or not self._digits:
                self._typeahead = typed[index + 1:] if jump is not None else []
                return jump
        return None

    def _collect_present(self, node: CollectNode, before: Prompts) -> None:
        if self._play(before + node.prompt, node.barge_in):
            self._phase = "prompt"
        else:
            self._wait_input(node.first_digit_timeout)

    def _collect_digit(self, node: CollectNode, digit: str) -> Jump | None:
        if node.terminator is not None and digit == node.terminator:
            return self._collect_finish(node)
        self._digits.append(digit)
        if len(self._digits) >= node.max_length:
            return self._collect_finish(node)
        self._start_timer(node.inter_digit_timeout)
        return None

    def _collect_finish(self, node: CollectNode) -> Jump | None:
        self._cancel_timer()
        value = "".join(self._digits)
        self._digits = []
        pattern_ok = node.pattern is None or node.pattern.fullmatch(value) is not None
        if node.min_length <= len(value) <= node.max_length and pattern_ok:
            self._variables[node.variable] = Secret(value) if node.secure else value
            shown = "***" if node.secure else value
            self._record(PathStep("input", f"{node.variable}={shown}"))
            return self._jump(node.next)
        self._record(PathStep("invalid" if value else "timeout"))
        self._attempts += 1
        if self._attempts > node.retries:
            return self._jump_or_goodbye(node.on_failure, "collect_failed")
        before = node.timeout_prompt if not value and node.timeout_prompt else node.invalid_prompt
        self._typeahead.clear()
        self._collect_present(node, before)
        return None

    def _enter_branch(self, node: BranchNode) -> Jump | None:
        return self._evaluate_branch(may_wait=True)

    def _evaluate_branch(self, may_wait: bool = False) -> Jump | None:
        """First true rule wins. Reaching a rule on ``customer.*`` before the CRM answered waits."""
        node = self._node
        assert isinstance(node, BranchNode)
        wait = self._flow.customer_wait if node.customer_wait is None else node.customer_wait
        for rule in node.rules:
            if (may_wait and self._customer is None and not self._customer_gave_up and wait > 0
                    and needs_customer(rule.when)):
                self._phase = "customer"
                self._start_timer(wait)
                return None
            if evaluate(rule.when, self._lookup, self._schedule_open):
                return self._jump(rule.goto)
        return self._jump(node.default)

    def _enter_set(self, node: SetNode) -> Jump | None:
        for name, template in node.variables:
            value = template if is_static(template) else render(template, self._text_of, safe=False) or ""
            if name != "language":
                self._variables[name] = value
            elif _LANGUAGE_RE.match(value):        # a bad computed language is ignored
                self._language = value
                self._out.append(SetLanguage(value))
        return self._jump(node.next)

    def _enter_queue(self, node: QueueNode) -> Jump | None:
        self._typeahead.clear()
        self._phase = "queue"
        self._out.append(Enqueue(node.queue, node.required_skills, node.optional_skills, node.priority,
                                 node.max_wait, self.language))
        return None

    def _on_queue_result(self, outcome: str) -> Jump | None:
        node = self._node
        assert isinstance(node, QueueNode)
        self._record(PathStep("queue", f"{node.queue} {outcome}"))
        if outcome == "answered":
            if node.on_answered is not None:
                return self._jump(node.on_answered)
            self._hangup("normal", "queue_answered")
            return None
        if outcome == "abandoned":
            self._finish("queue_abandoned")
            return None
        target = {"timeout": node.on_timeout, "no_agents": node.on_no_agents, "full": node.on_full}[outcome]
        return self._jump_or_goodbye(target, f"queue_{outcome}")

    def _enter_transfer(self, node: TransferNode) -> Jump | None:
        self._typeahead.clear()
        self._phase = "transfer"
        external = node.number is not None
        self._out.append(Transfer(node.number if external else node.destination or "", node.timeout,
                                  node.trunk, external))
        return None

    def _on_transfer_result(self, outcome: str) -> Jump | None:
        node = self._node
        assert isinstance(node, TransferNode)
        self._record(PathStep("transfer", f"{node.target} {outcome}"))
        if outcome == "answered":
            self._finish("transferred")
            return None
        return self._jump_or_goodbye(node.on_failure, "transfer_failed")

    def _enter_voicemail(self, node: VoicemailNode) -> Jump | None:
        self._typeahead.clear()
        if self._play(node.prompt, False):
            self._phase = "prompt"
        else:
            self._start_recording(node)
        return None

    def _start_recording(self, node: VoicemailNode) -> None:
        channel = _UNSAFE_ID_CHARS.sub("_", self._call.channel_id)
        self._recording = f"vm-{channel}-{next(self._recording_ids)}"
        self._phase = "recording"
        self._out.append(Record(self._recording, node.max_seconds, node.beep))

    def _on_recording_finished(self, duration: float) -> Jump | None:
        node = self._node
        assert isinstance(node, VoicemailNode) and self._recording is not None
        self._store_voicemail(node.mailbox, self._recording, duration)
        self._recording = None
        return self._jump_or_goodbye(node.next, "voicemail")

    def _store_voicemail(self, mailbox: str, recording: str, duration: float) -> None:
        if not duration >= MIN_MESSAGE_SECONDS:   # a caller who hung up at the tone left no message
            self._record(PathStep("voicemail", f"{mailbox} (empty)"))
            self._out.append(DiscardRecording(recording, duration))
            return
        self._record(PathStep("voicemail", mailbox))
        self._out.append(StoreVoicemail(mailbox, recording, duration, self._clock(), self._call.caller))

    def _store_orphan_recording(self, event: RecordingFinished) -> None:
        if self._orphan_recording is not None and event.name == self._orphan_recording[1]:
            mailbox, recording = self._orphan_recording
            self._orphan_recording = None
            self._store_voicemail(mailbox, recording, event.duration)

    def _enter_callback(self, node: CallbackNode) -> Jump | None:
        if node.variable is None:
            number = self._call.caller
        else:
            value = self._variables.get(node.variable)
            number = value.reveal() if isinstance(value, Secret) else as_text(value) or ""
        number = number.strip()
        usable = _callback_number_ok(number)
        if node.confirm:
            # "the number ending 1234: press 1 if correct, 2 to enter another"; no usable number: type one
            self._typeahead.clear()
            self._cb_number = number if usable else ""
            if usable:
                self._callback_ask_confirm(node, ())
            else:
                self._callback_ask_number(node, ())
            return None
        if usable:
            return self._callback_request(node, number)
        self._record(PathStep("callback", f"{node.queue} skipped: no number"))
        return self._jump_or_goodbye(node.next, "callback")

    def _callback_request(self, node: CallbackNode, number: str) -> Jump | None:
        self._out.append(RequestCallback(node.queue, self._clock(), number))
        self._record(PathStep("callback", node.queue))
        return self._jump_or_goodbye(node.next, "callback")

    def _callback_ask_confirm(self, node: CallbackNode, before: Prompts) -> None:
        self._cb_mode = "confirm"
        digits = [c for c in self._cb_number if c.isdigit()]
        self._variables["callback_number_end"] = "".join(digits[-4:])
        self._present(before + node.confirm_prompt, node.timeout)

    def _callback_ask_number(self, node: CallbackNode, before: Prompts) -> None:
        self._cb_mode = "enter"
        self._digits = []
        self._present(before + node.number_prompt, node.timeout)

    def _present(self, prompts: Prompts, timeout: float) -> None:
        if self._play(prompts, True):
            self._phase = "prompt"
        else:
            self._wait_input(timeout)

    def _callback_digit(self, node: CallbackNode, digit: str) -> Jump | None:
        if self._cb_mode == "confirm":
            if digit == "1":
                self._record(PathStep("key", "1"))
                return self._callback_request(node, self._cb_number)
            if digit == "2":
                self._record(PathStep("key", "2"))
                self._callback_ask_number(node, ())
                return None
            self._record(PathStep("invalid"))
            return self._callback_retry(node)
        if digit == "#":                              # a typed number, ended by #
            return self._callback_number_typed(node)
        if digit.isdigit():
            self._digits.append(digit)
        if len(self._digits) >= CALLBACK_NUMBER_MAX:
            return self._callback_number_typed(node)
        self._start_timer(node.timeout)
        return None

    def _callback_number_typed(self, node: CallbackNode) -> Jump | None:
        self._cancel_timer()
        typed, self._digits = "".join(self._digits), []
        if len(typed) < CALLBACK_NUMBER_MIN:
            self._record(PathStep("invalid" if typed else "timeout"))
            return self._callback_retry(node)
        self._cb_number = typed                        # never in the path: a phone number
        self._callback_ask_confirm(node, ())
        return None

    def _callback_retry(self, node: CallbackNode) -> Jump | None:
        self._attempts += 1
        if self._attempts > node.retries:
            self._record(PathStep("callback", f"{node.queue} not confirmed"))
            return self._jump_or_goodbye(node.on_failure, "callback_not_confirmed")
        if self._cb_mode == "confirm" and self._cb_number:
            self._callback_ask_confirm(node, node.invalid_prompt)
        else:
            self._callback_ask_number(node, node.invalid_prompt)
        return None

    def _enter_goto(self, node: GotoNode) -> Jump | None:
        if node.flow is None:
            return self._jump(node.target or "")
        flow = self._flowset.get(node.flow)
        if flow is None:
            self._hangup("normal", "flow_error")
            return None
        return (flow, flow.entry)

    def _enter_hangup(self, node: HangupNode) -> Jump | None:
        self._say_goodbye("hangup", node.prompt, node.reason)
        return None
