"""The sample flows in flows/: valid with stock Asterisk sounds, and what the simulator prints."""

from __future__ import annotations

import shlex
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from ivr.flow import CallInfo, load_flow_dir, load_flow_sources
from ivr.flow.cli import simulate_main, validate_main
from ivr.flow.simulate import Script, simulate

REPO = Path(__file__).resolve().parents[3]
FLOWS = REPO / "flows"
SAMPLE_QUEUES = {"billing", "technical", "sales", "legacy"}
PARIS = ZoneInfo("Europe/Paris")


@pytest.fixture(scope="module")
def samples(core_sounds):
    flowset, diagnostics = load_flow_dir(FLOWS, known_queues=SAMPLE_QUEUES, known_sounds=core_sounds)
    assert diagnostics == [], "\n".join(d.format() for d in diagnostics)
    return flowset


def test_samples_are_valid_with_only_core_sounds_and_the_known_queues(samples):
    assert samples.names == ("bilingual", "demo", "sales", "support")


def test_the_validate_command_accepts_the_samples(capsys):
    assert validate_main([str(FLOWS), "--queues", ",".join(sorted(SAMPLE_QUEUES))]) == 0
    assert capsys.readouterr().out == "OK: 4 flow files, 0 errors, 0 warnings\n"


def run(samples, flow: str, at: datetime, **script) -> list[str]:
    return simulate(samples, flow, CallInfo("sim", caller="+33612345678"), lambda: at, Script(**script)).lines


def path_of(lines: list[str]) -> str:
    return lines[-1].removeprefix("path: ")


def test_after_hours_caller_leaves_a_voicemail(samples):
    # Christmas Eve 2025 is a short day (08:00-12:00): at 13:00 the line is closed.
    lines = run(samples, "support", datetime(2025, 12, 24, 13, 0, tzinfo=PARIS))
    assert lines == [
        "  answer",
        "support:welcome (play)",
        "  play sound:hello-world",
        "support:check_hours (branch)",
        "support:after_hours (play)",
        "  play sound:im-sorry sound:please-try-call-later",
        "support:leave_message (voicemail)",
        "  play sound:vm-intro",
        "  record vm-sim-1 (max 120 s, beep)",
        "  (caller speaks for 10 s)",
        "  voicemail stored in mailbox 'support' (10 s)",
        "support:goodbye (hangup)",
        "  play sound:vm-goodbye",
        "  hangup (normal)",
        "end: hangup",
        ("path: support:welcome > support:check_hours > support:after_hours > support:leave_message > "
        "voicemail support > support:goodbye > end hangup"),
    ]


def test_pay_a_bill_with_a_secure_pin(samples):
    lines = run(samples, "support", datetime(2025, 3, 4, 10, 0, tzinfo=PARIS),
                digits=("1", "1", "2468#"), customer={"tier": "standard"})
    assert lines == [
        "  answer",
        "support:welcome (play)",
        "  play sound:hello-world",
        "  (customer data arrives: tier=standard)",
        "support:check_hours (branch)",
        "support:check_tier (branch)",
        "support:main_menu (menu)",
        "  play sound:basic-pbx-ivr-main",
        "  caller presses 1",
        "support:billing_menu (menu)",
        "  play sound:vm-press digits:1 sound:vm-press digits:2 sound:vm-starmain",
        "  caller presses 1",
        "support:pay_pin (collect)",
        "  play sound:agent-pass",
        "  caller presses *****",
        "support:pin_accepted (play)",
        "  play sound:auth-thankyou",
        "support:payments_queue (queue)",
        "  enqueue in 'billing' (required: billing=1, payments=1; optional: none; priority 5)",
        "  (queue result: answered)",
        "  hangup (normal)",
        "end: queue_answered",
        ("path: support:welcome > support:check_hours > support:check_tier > support:main_menu > key 1 > "
        "support:billing_menu > key 1 > support:pay_pin > input card_pin=*** > support:pin_accepted > "
        "support:payments_queue > queue billing answered > end queue_answered"),
    ]


@pytest.mark.parametrize("script, path", [
    # VIP from the CRM: priority queue; no agent -> the menu; 4 incident, back; 9 invalid; 0 operator.
    ({"customer": {"customer.tier": "vip"}, "queue_outcomes": ("no_agents",), "digits": ("4", "9", "0")},
     ("support:welcome > support:check_hours > support:check_tier > support:vip_queue > queue technical no_agents"
     " > support:main_menu > key 4 > support:incident > support:main_menu > key 9 > invalid > key 0 > "
     "support:operator > support:operator_transfer > transfer operator answered > end transferred")),
    # The CRM never answers: unknown caller after customer_wait. Account number, read back, queue.
    ({"digits": ("3", "123456#")},
     ("support:welcome > support:check_hours > support:check_tier > support:main_menu > key 3 > "
     "support:account_number > input account_id=123456 > support:account_confirm > support:account_queue > "
     "queue billing answered > end queue_answered")),
    # Silence: timeout prompt, * repeats, silence again until max attempts -> operator.
    ({"customer": {}, "digits": ("", "*")},
     ("support:welcome > support:check_hours > support:check_tier > support:main_menu > timeout > key * > "
     "support:main_menu > timeout > timeout > timeout > support:operator > support:operator_transfer > "
     "transfer operator answered > end transferred")),
    # Billing questions: queue timeout -> callback offer -> 1: callback request, the number confirmed with 1.
    ({"customer": {}, "digits": ("1", "2", "1", "1"), "queue_outcomes": ("timeout",)},
     ("support:welcome > support:check_hours > support:check_tier > support:main_menu > key 1 > "
     "support:billing_menu > key 2 > support:billing_queue > queue billing timeout > support:offer_callback > "
     "key 1 > support:request_callback > key 1 > callback billing > support:callback_thanks > support:goodbye > "
     "end hangup")),
])
def test_support_paths(samples, script, path):
    lines = run(samples, "support", datetime(2025, 3, 4, 10, 0, tzinfo=PARIS), **script)
    assert path_of(lines) == path


def test_account_number_is_read_back(samples):
    lines = run(samples, "support", datetime(2025, 3, 4, 10, 0, tzinfo=PARIS), customer={}, digits=("3", "123456#"))
    assert "  play sound:you-entered digits:123456" in lines


def test_sales_reuses_the_support_flow_after_hours(samples):
    # 18:00 in New York: sales is closed; support (Paris, midnight) too -> support's voicemail.
    lines = run(samples, "sales", datetime(2025, 3, 4, 18, 0, tzinfo=ZoneInfo("America/New_York")))
    assert path_of(lines) == (
        "sales:welcome > sales:check_hours > sales:support_line > support:welcome > support:check_hours > "
        "support:after_hours > support:leave_message > voicemail support > support:goodbye > end hangup")


def test_sales_routes_legacy_customers_with_open_tickets(samples):
    lines = run(samples, "sales", datetime(2025, 3, 4, 10, 0, tzinfo=ZoneInfo("America/New_York")),
                customer={"customer.tier": "legacy", "customer.open_tickets": 2})
    assert path_of(lines) == "sales:welcome > sales:check_hours > sales:legacy_queue > queue legacy answered > " \
                             "end queue_answered"


def test_simulate_command_prints_the_walk(capsys):
    code = simulate_main([str(FLOWS / "support.yaml"), "--at", "2025-03-04T10:00:00+01:00", "--caller",
                          "+33612345678", "--customer", "tier=standard", "--digits", "2",
                          "--queue-outcome", "answered"])
    out = capsys.readouterr().out.splitlines()
    assert code == 0
    assert out[0] == (f"simulating flow 'support' ({FLOWS / 'support.yaml'}): caller +33612345678, "
                      "at 2025-03-04T10:00:00+01:00")
    assert out[-5:] == [
        "  enqueue in 'technical' (required: technical=2; optional: networking=3; priority 0)",
        "  (queue result: answered)",
        "  hangup (normal)",
        "end: queue_answered",
        ("path: support:welcome > support:check_hours > support:check_tier > support:main_menu > key 2 > "
        "support:technical_queue > queue technical answered > end queue_answered"),
    ]


def test_simulate_command_refuses_broken_flows(capsys):
    bad = REPO / "tests" / "unit" / "flow" / "bad" / "targets.yaml"
    assert simulate_main([str(bad)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[-1] == f"FAILED: cannot simulate, the flows in {bad.parent} have errors"
    assert simulate_main([str(FLOWS / "nope.yaml")]) == 1
    with pytest.raises(SystemExit):
        simulate_main([str(FLOWS / "support.yaml"), "--digits", "1,x"])
    with pytest.raises(SystemExit):
        simulate_main([str(FLOWS / "support.yaml"), "--queue-outcome", "lost"])


DOCS = REPO / "docs" / "flows.md"


def docs_blocks(language: str) -> list[str]:
    """The fenced code blocks of docs/flows.md tagged ``language`` ("" for untagged)."""
    blocks, current, tag = [], None, None
    for line in DOCS.read_text().splitlines(keepends=True):
        if line.startswith("```") and current is None:
            current, tag = [], line[3:].strip()
        elif line.startswith("```"):
            if tag == language:
                blocks.append("".join(current))
            current = None
        elif current is not None:
            current.append(line)
    return blocks


def test_the_complete_example_in_the_docs_is_valid():
    example = docs_blocks("yaml")[0]
    stub = "flow: technical_support\nentry: bye\nnodes:\n  bye: {type: hangup}\n"
    flowset, diagnostics = load_flow_sources([("example.yaml", example), ("stub.yaml", stub)],
                                             known_queues=SAMPLE_QUEUES)
    assert diagnostics == [], "\n".join(map(str, diagnostics))
    assert len(flowset["support"].nodes) == 11


def test_the_simulation_shown_in_the_docs_is_what_the_command_prints(capsys, monkeypatch):
    shown = next(block for block in docs_blocks("") if block.startswith("$ ivr simulate"))
    command, _, expected = shown.partition("\n")
    monkeypatch.chdir(REPO)
    assert simulate_main(shlex.split(command)[3:]) == 0
    assert capsys.readouterr().out == expected
