"""The transfer node: it waits for the target; only an answer ends the flow; busy / no answer / failed go to
on_failure or a polite hang-up. The validator checks destinations, trunks and numbers against the config."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime

import pytest

from ivr.flow import (
    CallInfo,
    DigitReceived,
    FlowEnded,
    Hangup,
    HungUp,
    NodeEntered,
    Play,
    PlaybackFinished,
    QueueResult,
    Transfer,
    TransferResult,
    load_flow_sources,
    load_flow_text,
)
from ivr.flow.model import Destinations
from ivr.flow.simulate import Script, simulate

NOON = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)

FLOW = """
flow: t
entry: operator
nodes:
  operator:
    type: transfer
    destination: operator
    timeout: 12
    on_failure: sorry
  sorry: {type: play, prompt: sound:sorry, next: bye}
  bye: {type: hangup}
"""

EXTERNAL = """
flow: t
entry: out
nodes:
  out: {type: transfer, number: "+441632960123", trunk: carrier}
"""

KNOWN = Destinations(frozenset({"operator", "PJSIP/agent1"}), frozenset({"carrier"}))


def test_transfer_waits_for_the_target_and_only_an_answer_ends_the_flow(drive):
    call = drive(FLOW, customer_lookup=False)
    assert call.start()[-2:] == [NodeEntered("t", "operator", "transfer"), Transfer("operator", 12.0)]
    assert call.runner.waiting_for == "transfer_result" and not call.runner.finished
    assert call.feed(DigitReceived("5")) == []             # keys while it rings are ignored
    assert call.feed(QueueResult("answered")) == []        # not a queue
    assert call.feed(TransferResult("answered")) == [FlowEnded("transferred")]
    assert [str(s) for s in call.runner.path] == ["t:operator", "transfer operator answered", "end transferred"]


@pytest.mark.parametrize("outcome", ["busy", "no_answer", "failed"])
def test_a_failed_transfer_goes_to_on_failure(drive, outcome):
    call = drive(FLOW, customer_lookup=False)
    call.start()
    out = call.feed(TransferResult(outcome))
    assert out[0] == NodeEntered("t", "sorry", "play") and isinstance(out[1], Play)
    assert not call.runner.finished
    assert [str(s) for s in call.runner.path] == ["t:operator", f"transfer operator {outcome}", "t:sorry"]


def test_without_on_failure_the_caller_is_told_goodbye_never_left_in_silence(drive):
    call = drive("""
        flow: t
        entry: op
        nodes:
          op: {type: transfer, destination: PJSIP/agent1}
    """)
    assert call.start()[-1] == Transfer("PJSIP/agent1", 30.0)
    out = call.feed(TransferResult("busy"))
    assert isinstance(out[0], Play) and out[0].media == ("sound:vm-goodbye",)
    assert call.feed(PlaybackFinished(out[0].playback_id)) == [Hangup("normal"), FlowEnded("transfer_failed")]


def test_caller_hanging_up_while_it_rings_ends_the_flow(drive):
    call = drive(FLOW, customer_lookup=False)
    call.start()
    assert call.feed(HungUp()) == [FlowEnded("caller_hangup")]
    assert call.feed(TransferResult("answered")) == []


def test_an_outside_number_goes_through_its_trunk_and_is_never_in_the_path(drive):
    call = drive(EXTERNAL, customer_lookup=False)
    cmd = call.start()[-1]
    assert cmd == Transfer("+441632960123", 30.0, "carrier", external=True)
    assert "+441632960123" not in repr(cmd)
    call.feed(TransferResult("answered"))
    assert "transfer external answered" in [str(s) for s in call.runner.path]
    assert "441632960123" not in " ".join(str(s) for s in call.runner.path)


def _diagnostics(text: str, known: Destinations | None = KNOWN) -> list[str]:
    _, diagnostics = load_flow_text(textwrap.dedent(text), "x.yaml", known_destinations=known)
    return [str(d) for d in diagnostics if d.is_error]


def test_validator_reports_unknown_extensions_and_trunks_with_positions():
    errors = _diagnostics("""\
        flow: t
        entry: a
        nodes:
          a: {type: transfer, destination: PJSIP/operator, on_failure: b}
          b: {type: transfer, number: "+441632960123", trunk: carier}
    """)
    assert errors == [
        "x.yaml:4:36: unknown transfer destination 'PJSIP/operator' (did you mean 'operator'?)",
        "x.yaml:5:55: unknown trunk 'carier' (known trunks: carrier)",
    ]


def test_validator_reports_malformed_numbers_and_wrong_key_combinations():
    errors = _diagnostics("""\
        flow: t
        entry: a
        nodes:
          a: {type: transfer, number: "0044 1632 960123", on_failure: b}
          b: {type: transfer, on_failure: c}
          c: {type: transfer, destination: operator, number: "123456", on_failure: d}
          d: {type: transfer, destination: operator, trunk: carrier}
    """)
    assert errors[0].startswith("x.yaml:4:31: 'number' must be a phone number")
    assert errors[1].startswith("x.yaml:5:3: transfer node 'b' needs exactly one of 'destination'")
    assert "use a queue node" in errors[1]
    assert errors[2].startswith("x.yaml:6:3: transfer node 'c' needs exactly one of")
    assert errors[3] == "x.yaml:7:53: 'trunk' goes with 'number' (an outside number), not 'destination'"
    assert len(errors) == 4


def test_an_outside_number_without_trunk_needs_exactly_one_configured():
    text = """\
        flow: t
        entry: a
        nodes:
          a: {type: transfer, number: "+441632960123"}
    """
    assert _diagnostics(text) == []                      # the only trunk
    assert _diagnostics(text, Destinations(frozenset(), frozenset())) == [
        "x.yaml:4:31: an outside number needs a trunk: no trunk is configured"]
    two = Destinations(frozenset(), frozenset({"a", "b"}))
    assert "several trunks are configured (a, b)" in _diagnostics(text, two)[0]


def test_without_the_config_destinations_are_not_checked():
    assert _diagnostics("""\
        flow: t
        entry: a
        nodes:
          a: {type: transfer, destination: PJSIP/anything}
    """, None) == []


def test_sample_flows_pass_against_the_sample_config():
    from pathlib import Path

    from ivr.config import load_config
    repo = Path(__file__).resolve().parents[3]
    cfg = load_config(repo / "config" / "ivr.yaml", env={})
    sources = [(str(p), p.read_text()) for p in sorted((repo / "flows").glob("*.yaml"))]
    flowset, diagnostics = load_flow_sources(
        sources, known_queues={str(q["name"]) for q in cfg.queues},
        known_destinations=Destinations(*cfg.transfer_destinations()))
    assert flowset is not None, [str(d) for d in diagnostics]


def test_simulation_follows_the_scripted_transfer_outcomes():
    flowset, _ = load_flow_sources([("t.yaml", FLOW)])
    sim = simulate(flowset, "t", CallInfo("sim", caller="1", did="", customer_lookup=False),
                   lambda: NOON, Script(transfer_outcomes=("no_answer",)))
    assert "  transfer to operator (rings up to 12 s)" in sim.lines
    assert "  (transfer result: no_answer)" in sim.lines
    assert sim.lines[-1] == ("path: t:operator > transfer operator no_answer > t:sorry > t:bye > end hangup")


def test_the_validation_shown_in_the_docs_is_what_the_command_prints(tmp_path, monkeypatch, capsys):
    from pathlib import Path

    from ivr.cli import _flow_config_reader
    from ivr.flow.cli import validate_main
    repo = Path(__file__).resolve().parents[3]
    text = (repo / "docs" / "flows.md").read_text()
    flow = text.split("```yaml\n# flows/escalate.yaml\n", 1)[1].split("```", 1)[0]
    shown = text.split("```\n$ ivr validate flows/escalate.yaml --config config/ivr.yaml\n", 1)[1].split("```")[0]
    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "escalate.yaml").write_text("# flows/escalate.yaml\n" + flow)
    monkeypatch.chdir(tmp_path)
    code = validate_main(["flows/escalate.yaml", "--config", str(repo / "config" / "ivr.yaml")],
                         _flow_config_reader)
    assert code == 1
    assert capsys.readouterr().out == shown
