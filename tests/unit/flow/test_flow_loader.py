"""Loader and validator: exact diagnostics (line:col: message) for bad files, models for good ones."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from ivr.flow import Diagnostic, load_flow_dir, load_flow_file, load_flow_sources, load_flow_text
from ivr.flow.cli import validate_main
from ivr.flow.conditions import AllOf, AnyOf, Compare, NotOf, ScheduleIs
from ivr.flow.model import CollectNode, MenuNode, Prompt, QueueNode
from ivr.flow.schedule import Holiday, TimeRange

HERE = Path(__file__).parent
BAD = HERE / "bad"
GOOD = HERE / "good"

# Every error of every bad fixture, in order. A fixture file without an entry here fails
# test_every_bad_fixture_is_checked, so none goes unasserted.
BAD_FILE_ERRORS = {
    "duplicates.yaml": [
        "3:1: duplicate key 'entry' (first defined at line 2)",
        "10:7: duplicate key '1' (first defined at line 9)",
        "12:7: duplicate key '#' (first defined at line 11)",
        "16:3: duplicate key 'bye' (first defined at line 14)",
    ],
    "empty.yaml": [
        "1:1: empty flow file (expected a mapping with 'entry' and 'nodes')",
    ],
    "loops.yaml": [
        '4:3: loop without caller input: start -> tag -> announce -> start (a caller would be stuck; add a menu or collect)',
        '23:3: loop without caller input: spin -> spin (a caller would be stuck; add a menu or collect)',
    ],
    "missing.yaml": [
        "1:1: flow file is missing required key 'entry'",
        "3:3: menu node 'menu' is missing required key 'options'",
        "6:3: collect node 'get' is missing required key 'variable'",
        "9:3: branch node 'check' is missing required key 'default'",
        "11:12: 'rules' must have at least one rule",
        "12:3: goto node 'jump' needs exactly one of 'target' or 'flow'",
    ],
    "not_a_mapping.yaml": [
        '1:1: a flow file must be a mapping, got a list',
    ],
    "prompts.yaml": [
        "13:9: secure variable 'pin' cannot be used in a prompt, a set value or a callback",
        "14:9: bad media URI 'mp3:hello' (expected one of sound:, recording:, digits:, number:, characters:, tone:)",
        "15:9: media URI 'sound:' has nothing after 'sound:'",
        "16:9: 'digits:12a': digits: takes digits 0-9, * and #",
        "17:9: bad template in 'sound:{customer.name': unclosed '{' at position 7",
        "18:33: 'French' is not a language code such as 'en' or 'fr_CA'",
        "19:9: 'sound:../../etc/passwd': bad sound name",
        "20:9: 'prompt' must be a media URI such as 'sound:hello-world', a list of them or a mapping of language to URI, got an empty list",
        "24:23: secure variable 'pin' cannot be used in a prompt, a set value or a callback",
        "29:15: secure variable 'pin' cannot be used in a prompt, a set value or a callback",
    ],
    "regex.yaml": [
        "7:14: bad regular expression in 'pattern': unterminated character set at position 0",
        "12:39: bad regular expression in 'matches': missing ), unterminated subpattern at position 0",
        "14:15: condition on 'customer.tier' needs exactly one operator (eq, ne, in, not_in, matches, exists, gt, lt, ge, le)",
        "16:21: 'bad name' is not a variable name (such as caller, did, account or customer.tier)",
        "18:34: 'gt' must be a number, got 'lots'",
        "20:34: 'in' must be a non-empty list, got an empty list",
        "22:21: 'all' must be a non-empty list of conditions, got a mapping",
        "24:30: unknown key 'equals' in condition",
        "26:15: a condition needs one of 'var', 'schedule', 'all', 'any' or 'not', got 'tier'",
    ],
    "schedules.yaml": [
        "5:15: unknown time zone 'Europe/Pariss' (use an IANA name such as 'Europe/Paris')",
        "8:7: fri already has hours from 'mon-fri'",
        "9:12: time range '18:00-09:00' ends before it starts (split ranges that cross midnight at 24:00)",
        "10:12: bad time '25:00' (expected 00:00 to 24:00)",
        "12:9: bad date '2025-02-30' (expected YYYY-MM-DD, or MM-DD for every year)",
        '14:9: holiday date is listed twice (first at line 13)',
        '15:30: time ranges 08:00-12:00 and 11:00-13:00 overlap',
        "19:7: bad day 'weekdays' (expected mon..sun or a range like mon-fri)",
        "20:12: bad time '8' (expected HH:MM)",
        "25:38: 'is' must be 'open' or 'closed', got 'shut'",
    ],
    "syntax.yaml": [
        "6:9: YAML syntax error: expected ',' or ']', but got ':'",
    ],
    "targets.yaml": [
        "7:11: unknown node 'mian_menu' (did you mean 'main_menu'?)",
        "8:3: node 'main_menu' is unreachable from entry 'welcome'",
        "12:12: unknown node 'billing'",
        "15:3: node 'orphan' is unreachable from entry 'welcome'",
        "19:3: node 'orphan_end' is unreachable from entry 'welcome'",
        "21:3: node 'route' is unreachable from entry 'welcome'",
        "24:26: unknown schedule 'office_hours'",
        "25:15: unknown node 'nowhere'",
    ],
    "skill_levels.yaml": [
        ("7:34: level of required skill 'technical' must be a whole number from 1 to 5 (the ACD's proficiency "
        "scale), got '0'"),
        ("12:34: level of required skill 'technical' must be a whole number from 1 to 5 (the ACD's proficiency "
        "scale), got '80'"),
        ("12:62: level of required skill 'support' must be a whole number from 1 to 5 (the ACD's proficiency "
        "scale), got '6'"),
        "18:57: weight of optional skill 'support' must be a whole number from 0 to 100, got '101'",
    ],
    "types.yaml": [
        "3:11: 'language' must be a language code such as 'en' or 'fr_CA', got 'english'",
        "4:16: 'customer_wait' must be a number of seconds (0 or more), got '-1'",
        "8:13: bad media URI '42' (expected one of sound:, recording:, digits:, number:, characters:, tone:)",
        "10:14: 'timeout' must be a positive number of seconds, got 'soon'",
        "11:19: 'max_attempts' must be a whole number of at least 1, got '0'",
        "12:15: 'barge_in' must be true or false, got 'maybe'",
        "13:17: 'on_timeout' must be a name (letters, digits, '_' and '-'), got a list",
        "16:15: 'caller' is a reserved variable name",
        "17:17: 'min_length' (8) is greater than 'max_length' (4)",
        "19:17: 'terminator' must be one DTMF key (0-9, *, #, A-D) or none, got '##'",
        "20:14: 'retries' must be a whole number of at least 0, got '-1'",
        ("25:32: level of required skill 'billing' must be a whole number from 1 to 5 (the ACD's proficiency "
        "scale), got 'high'"),
        "25:38: 'bad skill' is not a skill name (letters, digits, '_' and '-')",
        "27:15: 'priority' must be a whole number, got '1.5'",
        "31:13: 'reason' must be one of normal, busy, congestion, no_answer, rejected, unallocated, got 'rude'",
        "32:3: goto node 'jump' needs exactly one of 'target' or 'flow'",
        "38:17: 'customer' is a reserved variable name",
        "38:40: 'language' must be a language code such as 'en' or 'fr_CA', got 'Klingon!'",
        "42:18: 'destination' must be an extension or endpoint such as 'PJSIP/1000', got 'PJSIP/1000; rm -rf'",
    ],
    "unknown_keys.yaml": [
        "3:1: unknown key 'langauge' in flow file (did you mean 'language'?)",
        "8:5: unknown key 'nxt' in play node 'welcome' (did you mean 'next'?)",
        "14:5: unknown key 'tiemout' in menu node 'menu' (did you mean 'timeout'?)",
        "17:11: unknown node type 'plya' (did you mean 'play'?)",
        "19:3: node 'no_type' is missing required key 'type' (one of: play, menu, collect, branch, set, queue, transfer, voicemail, callback, goto, hangup)",
    ],
    "unquoted_star.yaml": [
        '8:8: YAML syntax error: expected alphabetic or numeric character, but found \':\' (quote menu keys \'*\' and \'#\': "*": target)',
    ],
}


def errors(diagnostics: list[Diagnostic]) -> list[str]:
    return [f"{d.line}:{d.col}: {d.message}" for d in diagnostics if d.is_error]


def test_every_bad_fixture_is_checked():
    special = {"goto_flow.yaml", "queues_sounds.yaml", "warnings.yaml"}
    assert {p.name for p in BAD.glob("*.yaml")} == set(BAD_FILE_ERRORS) | special


@pytest.mark.parametrize("name", sorted(BAD_FILE_ERRORS))
def test_bad_fixture_reports_every_error_with_its_position(name):
    flow, diagnostics = load_flow_file(BAD / name)
    assert flow is None
    assert errors(diagnostics) == BAD_FILE_ERRORS[name]
    assert all(d.file == str(BAD / name) for d in diagnostics)


def test_unknown_queues_and_sounds_need_the_known_names():
    path = BAD / "queues_sounds.yaml"
    flow, diagnostics = load_flow_file(path, known_queues={"billing", "technical"}, known_sounds={"hello-world"})
    assert flow is None
    assert errors(diagnostics) == [
        "6:33: unknown sound 'hello-wrld' (did you mean 'hello-world'?)",
        "10:12: unknown queue 'bililng' (known queues: billing, technical)",
        "14:12: unknown queue 'support' (known queues: billing, technical)",
    ]
    # Templated sounds and recording: prompts are not checked; without the sets nothing is.
    flow, diagnostics = load_flow_file(path)
    assert flow is not None and diagnostics == []


def test_goto_to_an_unknown_flow_is_an_error_in_a_flow_set():
    text = (BAD / "goto_flow.yaml").read_text()
    flowset, diagnostics = load_flow_sources([("goto_flow.yaml", text)])
    assert flowset is None
    assert [str(d) for d in diagnostics] == ["goto_flow.yaml:6:11: unknown flow 'suport'"]
    support = "flow: support\nentry: a\nnodes:\n  a: {type: hangup}\n"
    flowset, diagnostics = load_flow_sources([("goto_flow.yaml", text.replace("suport", "support")),
                                              ("support.yaml", support)])
    assert flowset is not None and diagnostics == []


def test_warnings_do_not_block_loading():
    flow, diagnostics = load_flow_file(BAD / "warnings.yaml")
    assert flow is not None
    assert errors(diagnostics) == []
    assert [d.format().removeprefix(str(BAD) + "/") for d in diagnostics] == [
        ("warnings.yaml:6:3: warning: menu 'menu' has no 'on_timeout': callers who press nothing are hung up "
        "after 3 attempts"),
        "warnings.yaml:8:13: warning: prompt has no 'en' variant (the flow's default language)",
    ]


def test_diagnostic_prints_like_a_compiler():
    d = Diagnostic("flows/a.yaml", 3, 7, "unknown node 'x'")
    assert str(d) == "flows/a.yaml:3:7: unknown node 'x'"
    assert d.format() == str(d)
    w = Diagnostic("flows/a.yaml", 3, 7, "careful", "warning")
    assert str(w) == "flows/a.yaml:3:7: careful"
    assert w.format() == "flows/a.yaml:3:7: warning: careful"


def test_duplicate_keys_are_found_at_any_depth():
    text = """\
entry: route
nodes:
  route:
    type: branch
    rules:
      - when: {var: caller, eq: "1", eq: "2"}
        goto: bye
        goto: route
    default: bye
  bye: {type: hangup, reason: busy, reason: normal}
"""
    flow, diagnostics = load_flow_text(text, "dup.yaml")
    assert flow is None
    assert errors(diagnostics) == [
        "6:38: duplicate key 'eq' (first defined at line 6)",
        "8:9: duplicate key 'goto' (first defined at line 7)",
        "10:37: duplicate key 'reason' (first defined at line 10)",
    ]


def test_yaml_merge_keys_and_non_scalar_keys_are_rejected():
    text = """\
entry: a
base: &base {type: hangup}
nodes:
  a:
    <<: *base
  ? [x]
  : {type: hangup}
"""
    _, diagnostics = load_flow_text(text, "m.yaml")
    assert errors(diagnostics) == [
        "2:1: unknown key 'base' in flow file",
        ("4:3: node 'a' is missing required key 'type' (one of: play, menu, collect, branch, set, queue, "
        "transfer, voicemail, callback, goto, hangup)"),
        "5:5: YAML merge keys ('<<') are not supported",
        "6:5: keys in 'nodes' must be plain names, got a list",
    ]


def test_strings_are_taken_as_written_not_as_yaml_1_1_values():
    # `no` would be False and 18:00 the number 1080 for a YAML 1.1 constructor.
    flow, diagnostics = load_flow_text("""\
flow: norway
entry: a
language: no
nodes:
  a: {type: set, variables: {language: no, opens: 18:00, flag: yes}, next: b}
  b: {type: transfer, destination: 1000}
""", "n.yaml")
    assert diagnostics == [], diagnostics
    assert flow.language == "no"
    assert flow.nodes["a"].variables == (("language", "no"), ("opens", "18:00"), ("flag", "yes"))
    assert flow.nodes["b"].destination == "1000"


def test_good_fixtures_load_as_one_flow_set(core_sounds):
    sounds = core_sounds | {"fr/hello-world", "fr/vm-goodbye"}
    flowset, diagnostics = load_flow_dir([GOOD], known_queues={"billing"}, known_sounds=sounds)
    assert diagnostics == []
    assert flowset.names == ("all_nodes", "loop_with_menu", "shared")
    assert re.fullmatch(r"[0-9a-f]{12}", flowset.version)

    flow = flowset["all_nodes"]
    assert flow.file == str(GOOD / "all_nodes.yaml") and flow.customer_wait == 0.5
    assert flow.goodbye_prompt == (Prompt((("en", "sound:vm-goodbye"), ("fr", "sound:fr/vm-goodbye"))),)
    start = flow.nodes["start"]
    assert start.prompt == (Prompt((("en", "sound:hello-world"), ("fr", "sound:fr/hello-world"))),
                            Prompt.of("sound:silence/1"))
    assert start.barge_in is True and start.next == "route"

    route = flow.nodes["route"]
    assert route.customer_wait == 2.0 and route.needs_customer
    assert route.rules[0].when == ScheduleIs("office", open=False)
    assert route.rules[1].when == AnyOf((
        Compare("customer.tier", "in", ("vip", "gold")),
        AllOf((Compare("caller", "matches", re.compile(r"^\+1555")),
               NotOf(Compare("customer.known", "eq", "true")))),
    ))
    assert route.rules[2].when == Compare("customer.open_tickets", "ge", 3.0)

    menu = flow.nodes["language_menu"]
    assert isinstance(menu, MenuNode)
    assert (menu.options, menu.timeout, menu.max_attempts, menu.barge_in) == (
        (("1", "english"), ("2", "french")), 4.0, 2, False)

    account = flow.nodes["account"]
    assert isinstance(account, CollectNode)
    assert (account.terminator, account.pattern.pattern, account.retries, account.secure) == (
        "*", "[1-9][0-9]*", 1, False)
    assert flow.nodes["pin"].terminator is None and flow.nodes["pin"].secure is True

    queue = flow.nodes["vip"]
    assert isinstance(queue, QueueNode)
    assert (queue.required_skills, queue.optional_skills, queue.priority, queue.max_wait) == (
        (("billing", 2),), (("french", 1),), 3, 90.0)

    office = flow.schedules["office"]
    assert office.timezone == "America/New_York"
    assert office.weekly[0] == (TimeRange(480, 720), TimeRange(780, 1020))
    assert office.weekly[5] == (TimeRange(600, 720),) and office.weekly[6] == ()
    assert office.holidays == (Holiday(month=7, day=4, year=2025),
                               Holiday(month=12, day=24, hours=(TimeRange(480, 600),), name="Christmas Eve"))
    assert flowset["shared"].nodes["done"].reason == "busy"


def test_flow_sets_are_immutable_snapshots():
    flowset, _ = load_flow_dir(GOOD)
    with pytest.raises(TypeError):
        flowset.flows["x"] = flowset["shared"]
    with pytest.raises(TypeError):
        flowset["shared"].nodes["x"] = flowset["shared"].nodes["done"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        flowset["shared"].entry = "done"
    again, _ = load_flow_dir(GOOD)
    assert again.version == flowset.version


def test_version_changes_with_the_content():
    text = (GOOD / "shared.yaml").read_text()
    one, _ = load_flow_sources([("shared.yaml", text)])
    two, _ = load_flow_sources([("shared.yaml", text.replace("reason: busy", "reason: normal"))])
    assert one.version != two.version


def test_duplicate_flow_names_across_files():
    text = "flow: same\nentry: a\nnodes:\n  a: {type: hangup}\n"
    flowset, diagnostics = load_flow_sources([("a.yaml", text), ("b.yaml", text)])
    assert flowset is None
    assert [str(d) for d in diagnostics] == ["b.yaml:1:7: flow 'same' is already defined in a.yaml"]


def test_loops_across_flows_are_found():
    one = "flow: one\nentry: a\nnodes:\n  a: {type: goto, flow: two}\n"
    two = "flow: two\nentry: b\nnodes:\n  b: {type: play, prompt: sound:beep, next: c}\n  c: {type: goto, flow: one}\n"
    flowset, diagnostics = load_flow_sources([("one.yaml", one), ("two.yaml", two)])
    assert flowset is None
    assert [str(d) for d in diagnostics] == [
        ("one.yaml:4:3: loop without caller input: a -> two:b -> two:c -> a "
        "(a caller would be stuck; add a menu or collect)")]


def test_missing_paths_and_empty_directories(tmp_path):
    flowset, diagnostics = load_flow_dir([tmp_path / "nope.yaml", tmp_path])
    assert flowset is None
    assert [str(d) for d in diagnostics] == [
        f"{tmp_path}:1:1: no flow files (*.yaml, *.yml) in this directory",
        f"{tmp_path / 'nope.yaml'}:1:1: no such file or directory",
    ]


def test_non_utf8_file(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes("entry: caf\xe9\n".encode("latin-1"))
    flow, diagnostics = load_flow_file(path)
    assert flow is None
    assert [str(d) for d in diagnostics] == [f"{path}:1:11: not UTF-8 text: invalid continuation byte at byte 10"]


# -- ivr validate -----------------------------------------------------------------------------


def test_validate_cli_prints_errors_then_warnings_and_fails(capsys):
    code = validate_main([str(BAD / "targets.yaml"), str(BAD / "warnings.yaml")])
    out = capsys.readouterr().out.splitlines()
    assert code == 1
    assert out[0] == f"{BAD}/targets.yaml:7:11: unknown node 'mian_menu' (did you mean 'main_menu'?)"
    assert len(out) == 8 + 2 + 1
    assert out[8].startswith(f"{BAD}/warnings.yaml:6:3: warning: menu 'menu' has no 'on_timeout'")
    assert out[9] == f"{BAD}/warnings.yaml:8:13: warning: prompt has no 'en' variant (the flow's default language)"
    assert out[-1] == "FAILED: 2 flow files, 8 errors, 2 warnings"


def test_validate_cli_refuses_required_levels_off_the_acd_scale_with_positions(capsys):
    """``ivr validate``: a required level outside 1-5 is an error at file:line:col (no silent clamp)."""
    assert validate_main([str(BAD / "skill_levels.yaml")]) == 1
    out = capsys.readouterr()
    text = out.out + out.err
    assert f"{BAD / 'skill_levels.yaml'}:7:34: level of required skill 'technical' must be a whole number " \
           "from 1 to 5" in text
    assert f"{BAD / 'skill_levels.yaml'}:12:34:" in text and f"{BAD / 'skill_levels.yaml'}:12:62:" in text
    assert "networking" not in text  # 5 is on the scale; optional weights 0 and 100 are fine


def test_flow_skill_scale_is_the_acds():
    from ivr.acd.agent import SKILL_MAX, SKILL_MIN
    from ivr.flow import loader
    assert (loader.SKILL_MIN, loader.SKILL_MAX) == (SKILL_MIN, SKILL_MAX)


def test_validate_cli_accepts_directories_and_known_queues(capsys, tmp_path):
    assert validate_main([str(GOOD)]) == 0
    assert capsys.readouterr().out == "OK: 3 flow files, 0 errors, 0 warnings\n"
    assert validate_main([str(GOOD), "--queues", "sales, technical"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"{GOOD}/all_nodes.yaml:100:12: unknown queue 'billing' (known queues: sales, technical)"
    (tmp_path / "en" / "digits").mkdir(parents=True)
    for name in ("hello-world.gsm", "beep.wav", "digits/1.gsm", "readme.txt"):
        (tmp_path / "en" / name).write_text("")
    from ivr.flow.cli import sounds_in
    assert sounds_in(tmp_path / "en") == {"hello-world", "beep", "digits/1"}
    assert validate_main([str(GOOD / "shared.yaml"), "--sounds-dir", str(tmp_path / "en")]) == 1
    assert capsys.readouterr().out.splitlines()[0].endswith("unknown sound 'im-sorry'")
