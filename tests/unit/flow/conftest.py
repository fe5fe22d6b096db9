"""Fixtures for the flow language tests: build flow sets from YAML text, drive a FlowRunner."""

from __future__ import annotations

import textwrap
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from ivr.flow import CallInfo, FlowRunner, FlowSet, load_flow_sources
from ivr.flow.protocol import Command, DigitReceived, Event, PlaybackFinished, TimerFired

HERE = Path(__file__).parent
REPO = HERE.parents[2]
# A Tuesday at 10:00 in Paris: the sample support line is open.
TUESDAY_10H_PARIS = datetime(2025, 3, 4, 10, 0, tzinfo=ZoneInfo("Europe/Paris"))


def flowset_from(*texts: str, **known) -> FlowSet:
    """A FlowSet from YAML texts (dedented); fails the test on any error."""
    sources = [(f"flow{i}.yaml", textwrap.dedent(text)) for i, text in enumerate(texts)]
    flowset, diagnostics = load_flow_sources(sources, **known)
    assert flowset is not None, "\n".join(map(str, diagnostics))
    return flowset


class Driver:
    """A FlowRunner plus shortcuts for the events a test feeds most."""

    def __init__(self, flowset: FlowSet, flow: str, call: CallInfo, clock) -> None:
        self.runner = FlowRunner(flowset, flow, call, clock)
        self.commands: list[Command] = []

    def _log(self, commands: list[Command]) -> list[Command]:
        self.commands.extend(commands)
        return commands

    def start(self) -> list[Command]:
        return self._log(self.runner.start())

    def feed(self, event: Event) -> list[Command]:
        return self._log(self.runner.feed(event))

    def press(self, digit: str) -> list[Command]:
        return self.feed(DigitReceived(digit))

    def type(self, digits: str) -> list[Command]:
        return [c for d in digits for c in self.press(d)]

    def played(self) -> list[Command]:
        assert self.runner.active_playback, "no playback running"
        return self.feed(PlaybackFinished(self.runner.active_playback))

    def timeout(self) -> list[Command]:
        assert self.runner.active_timer, "no timer running"
        return self.feed(TimerFired(self.runner.active_timer))


@pytest.fixture
def drive():
    """drive(yaml_text, *more_flows, flow=None, at=..., **CallInfo fields) -> started-later Driver."""

    def make(text: str, *more: str, flow: str | None = None, at: datetime = TUESDAY_10H_PARIS,
             channel_id: str = "chan-1", caller: str = "+15550100", **call) -> Driver:
        flowset = flowset_from(text, *more)
        name = flow or flowset.for_file("flow0.yaml").name
        return Driver(flowset, name, CallInfo(channel_id=channel_id, caller=caller, **call), lambda: at)

    return make


@pytest.fixture(scope="session")
def core_sounds() -> frozenset[str]:
    lines = (HERE / "asterisk_core_sounds_en.txt").read_text().splitlines()
    return frozenset(line for line in lines if line and not line.startswith("#"))
