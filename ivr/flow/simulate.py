"""Walk a flow without Asterisk: the real ``FlowRunner`` with a scripted caller.

The simulated caller listens to every prompt to the end, then answers each wait for
input with the next entry of ``Script.digits`` (``"1"`` for a menu, ``"1234#"`` for a
collect, ``""`` to stay silent; digits are fed one at a time). When an entry is used up and the flow still
waits, or when no entries are left, the wait times out. Customer data (if any) arrives
right after the call starts; queue stays end with the scripted outcomes in order (the
last one repeats); recordings last ``recording_seconds``.

The result is a readable transcript: nodes entered, prompts played, keys pressed (secure
input as ``*``), commands given, and the final path.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .engine import FlowRunner
from .model import FlowSet
from .protocol import (
    Answer,
    CallInfo,
    CancelTimer,
    Command,
    CustomerData,
    DigitReceived,
    Enqueue,
    Event,
    FlowEnded,
    Hangup,
    NodeEntered,
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

_SHOWN_KEYS = 40      # keys shown per "caller presses" line of the transcript


@dataclass(frozen=True)
class Script:
    digits: tuple[str, ...] = ()
    customer: Mapping[str, Any] | None = None
    queue_outcomes: tuple[str, ...] = ("answered",)
    transfer_outcomes: tuple[str, ...] = ("answered",)
    recording_seconds: float = 10.0
    max_events: int = 500


@dataclass
class Simulation:
    runner: FlowRunner
    lines: list[str] = field(default_factory=list)
    commands: list[Command] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def _skills(skills: tuple[tuple[str, int], ...]) -> str:
    return ", ".join(f"{name}={level}" for name, level in skills) or "none"


def describe_command(command: Command) -> str | None:
    """One transcript line for a command (None for bookkeeping ones)."""
    match command:
        case NodeEntered(flow=flow, node=node, kind=kind):
            return f"{flow}:{node} ({kind})"
        case Answer():
            return "  answer"
        case Play(media=media):
            return "  play " + " ".join(media)
        case StopPlayback():
            return "  (prompt interrupted)"
        case SetLanguage(language=language):
            return f"  language -> {language}"
        case Enqueue():
            wait = "" if command.max_wait is None else f", max wait {command.max_wait:g} s"
            return (f"  enqueue in '{command.queue}' (required: {_skills(command.required_skills)}; optional: "
                    f"{_skills(command.optional_skills)}; priority {command.priority}{wait})")
        case Transfer(destination=destination, timeout=timeout, trunk=trunk, external=external):
            via = f" via trunk {trunk or '(the only one)'}" if external else ""
            return f"  transfer to {destination}{via} (rings up to {timeout:g} s)"
        case Record(name=name, max_seconds=max_seconds, beep=beep):
            return f"  record {name} (max {max_seconds} s{', beep' if beep else ''})"
        case StoreVoicemail(mailbox=mailbox, duration=duration):
            return f"  voicemail stored in mailbox '{mailbox}' ({duration:g} s)"
        case RequestCallback(queue=queue, number=number):
            return f"  callback requested for {number} in '{queue}'"
        case Hangup(reason=reason):
            return f"  hangup ({reason})"
        case FlowEnded(reason=reason):
            return f"end: {reason}"
        case StartTimer() | CancelTimer():
            return None
    return f"  {command}"


def simulate(
    flowset: FlowSet,
    flow_name: str,
    call: CallInfo,
    clock: Callable[[], datetime],
    script: Script = Script(),
) -> Simulation:
    runner = FlowRunner(flowset, flow_name, call, clock)
    sim = Simulation(runner)

    def run(commands: list[Command]) -> None:
        sim.commands.extend(commands)
        sim.lines.extend(line for line in map(describe_command, commands) if line is not None)

    run(runner.start())
    if script.customer is not None:
        fields = ", ".join(f"{k}={v}" for k, v in script.customer.items()) or "nothing found"
        sim.lines.append(f"  (customer data arrives: {fields})")
        run(runner.feed(CustomerData(script.customer)))

    groups = deque(script.digits)
    typing: deque[str] = deque()
    outcomes = deque(script.queue_outcomes)
    transfers = deque(script.transfer_outcomes)
    stopped_typing = False     # the caller finished an entry while the flow still waits
    for _ in range(script.max_events):
        waiting = runner.waiting_for
        event: Event
        if waiting == "nothing":
            break
        if waiting == "playback":
            event = PlaybackFinished(runner.active_playback or "")
        elif waiting == "input":
            if not typing and not stopped_typing and groups:
                entry = groups.popleft()        # an empty entry: the caller stays silent
                if entry:
                    typing.extend(entry)
                    shown = "*" * len(entry) if runner.input_is_secure else entry
                    if len(shown) > _SHOWN_KEYS:
                        shown = f"{shown[:_SHOWN_KEYS]}... ({len(entry)} keys)"
                    sim.lines.append(f"  caller presses {shown}")
            if typing:
                steps = runner.path_steps
                run(runner.feed(DigitReceived(typing.popleft())))
                stopped_typing = (not typing and runner.waiting_for == "input"
                                  and runner.path_steps == steps)
                continue
            stopped_typing = False
            sim.lines.append("  (no input: timeout)")
            event = TimerFired(runner.active_timer or "")
        elif waiting == "customer_data":
            sim.lines.append("  (no customer data in time: go on without it)")
            event = TimerFired(runner.active_timer or "")
        elif waiting == "queue_result":
            outcome = outcomes.popleft() if len(outcomes) > 1 else outcomes[0]
            sim.lines.append(f"  (queue result: {outcome})")
            event = QueueResult(outcome)
        elif waiting == "transfer_result":
            outcome = transfers.popleft() if len(transfers) > 1 else transfers[0]
            sim.lines.append(f"  (transfer result: {outcome})")
            event = TransferResult(outcome)
        else:  # recording
            sim.lines.append(f"  (caller speaks for {script.recording_seconds:g} s)")
            event = RecordingFinished(runner.recording_name or "", script.recording_seconds)
        run(runner.feed(event))
    else:
        sim.lines.append(f"(stopped after {script.max_events} events)")
    sim.lines.append("path: " + " > ".join(str(step) for step in runner.path))
    return sim
