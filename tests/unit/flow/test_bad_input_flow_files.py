"""Hostile and broken flow files: every problem is a `file:line:col: message` diagnostic, found in bounded
time, never an exception or a hang; a bad reload keeps the running flows in service."""

from __future__ import annotations

import asyncio
import re
import time

import pytest

from ivr.calls.flows import FlowRegistry
from ivr.flow import load_flow_dir, load_flow_file, load_flow_text
from ivr.flow.loader import MAX_FLOW_FILE_BYTES, MAX_YAML_DEPTH, MAX_YAML_NODES

pytestmark = pytest.mark.timeout(60)

GOOD = "flow: main\nentry: a\nnodes:\n  a: {type: hangup}\n"
_DIAG = re.compile(r"^(?P<file>[^:]+):(?P<line>\d+):(?P<col>\d+): (?P<message>.+)$", re.DOTALL)


def _alias_bomb(levels: int, fan: int = 2) -> str:
    """Each condition is `fan` copies of the previous one: fan**levels comparisons once expanded."""
    rules, prev = "", "{var: caller, eq: '1'}"
    for i in range(1, levels + 1):
        rules += f"      - when: &c{i} {{all: [{', '.join([prev] * fan)}]}}\n        goto: b\n"
        prev = f"*c{i}"
    return ("flow: x\nentry: a\nnodes:\n  a:\n    type: branch\n    rules:\n" + rules
            + "    default: b\n  b: {type: hangup}\n")


def _billion_laughs() -> str:
    lines = ["lol0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for i in range(1, 10):
        lines.append(f"lol{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 10) + "]")
    return "\n".join(lines) + "\nflow: x\nentry: a\nnodes:\n  a: {type: hangup, description: *l9}\n"


HOSTILE = {
    "billion laughs": (_billion_laughs(), "more than"),
    "alias bomb in conditions": (_alias_bomb(60), "aliases are expanded"),
    "recursive alias": (("flow: x\nentry: a\nnodes:\n  a:\n    type: branch\n    rules:\n"
                        "      - when: &c {not: *c}\n        goto: a\n    default: a\n"), "recursive alias"),
    "recursive nodes": ("flow: x\nentry: a\nnodes: &n\n  a: {type: goto, target: b}\n  b: *n\n", "recursive alias"),
    "deep lists": ("flow: x\nentry: a\nnodes: " + "[" * 100_000 + "]" * 100_000, "nested too deeply"),
    "deep mappings": ("flow: x\nentry: a\nnodes: " + "{a: " * 20_000 + "1" + "}" * 20_000, "nested too deeply"),
    "deep block mappings": ("flow: x\nentry: a\nnodes:\n" + "".join(" " * i + f"k{i}:\n" for i in range(1, 400)),
                            "nested too deeply"),
    "deep not": ("flow: x\nentry: a\nnodes:\n  a:\n    type: branch\n    rules:\n      - when: "
                 + "{not: " * 5000 + "{var: caller, eq: '1'}" + "}" * 5000 + "\n        goto: b\n"
                 "    default: b\n  b: {type: hangup}\n", "nested too deeply"),
    "huge int": ("flow: x\nentry: a\nnodes:\n  a: {type: collect, variable: v, max_length: " + "9" * 50_000
                 + ", next: b}\n  b: {type: hangup}\n", "must be a whole number"),
    "int too big for a float": ("flow: x\nentry: a\nnodes:\n  a: {type: queue, queue: q, max_wait: " + "9" * 400
                                + "}\n", "must be a positive number"),
    "hex int": ("flow: x\nentry: a\nnodes:\n  a: {type: queue, queue: q, priority: 0x" + "f" * 5000 + "}\n",
                "must be a whole number"),
    "NUL byte": ("flow: x\nentry: a\x00\nnodes:\n  a: {type: hangup}\n", "unacceptable character #x0000"),
    "binary garbage": (bytes(range(256)).decode("latin-1") * 4, "unacceptable"),
    "escape sequences": ("flow: x\nentry: a\x1b[2J\nnodes:\n  a: {type: hangup}\n", "unacceptable"),
    "tab indentation": ("flow: x\nentry: a\nnodes:\n\ta: {type: hangup}\n", "'\\t'"),
    "duplicate keys": ("flow: x\nentry: a\nnodes:\n  a: {type: hangup}\n  a: {type: hangup}\n", "duplicate key 'a'"),
    "unicode names": ("flow: flöw\nentry: ä\nnodes:\n  ä: {type: hangup}\n", "must be a name"),
    "confusable name": ("flow: x\nentry: а\nnodes:\n  а: {type: hangup}\n", "must be a name"),   # Cyrillic а
    "python tag": (("flow: !!python/object/apply:os.system ['touch /tmp/ivr-pwned']\nentry: a\n"
                   "nodes:\n  a: {type: hangup}\n"), "must be a name"),
    "merge key": ("x: &x {type: hangup}\nflow: y\nentry: a\nnodes:\n  a: {<<: *x}\n", "merge keys"),
    "injection in prompt": (("flow: x\nentry: a\nnodes:\n  a: {type: play, prompt: \"sound:x'; DROP TABLE--\", "
                            "next: b}\n  b: {type: hangup}\n"), "bad sound name"),
    "path traversal in prompt": (("flow: x\nentry: a\nnodes:\n  a: {type: play, prompt: sound:../../etc/passwd, "
                                 "next: b}\n  b: {type: hangup}\n"), "bad sound name"),
    "shell in transfer": ("flow: x\nentry: a\nnodes:\n  a: {type: transfer, destination: 'PJSIP/x;rm -rf /'}\n",
                          "destination"),
    "not a mapping": ("- just\n- a list\n", "must be a mapping"),
    "only a comment": ("# nothing\n", "empty flow file"),
    "many documents": (GOOD + "---\n" + GOOD, "YAML"),
}


def _check_diagnostics(diags, file: str) -> None:
    assert diags
    for d in diags:
        m = _DIAG.match(str(d))
        assert m, str(d)
        assert m["file"] == file and int(m["line"]) >= 1 and int(m["col"]) >= 1, str(d)
        assert len(str(d)) < 400, str(d)          # a bad value is quoted, not copied whole


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_text_is_a_located_error_in_bounded_time(name):
    text, expected = HOSTILE[name]
    t0 = time.perf_counter()
    flow, diags = load_flow_text(text, "evil.yaml")
    elapsed = time.perf_counter() - t0
    assert flow is None
    _check_diagnostics(diags, "evil.yaml")
    assert any(expected in d.message for d in diags if d.is_error), [str(d) for d in diags]
    assert elapsed < 5, elapsed


def test_nesting_error_points_at_the_level_that_is_too_deep():
    text = "flow: x\nentry: a\nnodes:\n  a: " + "[" * (MAX_YAML_DEPTH + 5) + "]" * (MAX_YAML_DEPTH + 5) + "\n"
    _, diags = load_flow_text(text, "deep.yaml")
    d = next(d for d in diags if "nested too deeply" in d.message)
    assert (d.line, d.col) == (4, 6 + MAX_YAML_DEPTH - 2)      # the first bracket beyond the limit


def test_control_character_error_has_its_line_and_column():
    _, diags = load_flow_text("flow: x\nentry: ab\x07c\nnodes:\n  a: {type: hangup}\n", "bell.yaml")
    assert [str(d) for d in diags] == [
        "bell.yaml:2:10: YAML error: unacceptable character #x0007 (flow files are plain UTF-8 text)"]


def test_anchors_and_aliases_within_the_limits_still_work():
    text = ("flow: x\nentry: a\nnodes:\n"
            "  a: {type: play, prompt: &p [sound:hello-world, sound:vm-goodbye], next: b}\n"
            "  b: {type: play, prompt: *p, next: c}\n"
            "  c: {type: hangup}\n")
    flow, diags = load_flow_text(text, "ok.yaml")
    assert flow is not None, [str(d) for d in diags]
    flow, diags = load_flow_text(_alias_bomb(8), "ok.yaml")      # 256 comparisons: legitimate, if odd
    assert flow is not None, [str(d) for d in diags]


@pytest.mark.parametrize("text", [
    "\ufeff" + GOOD,                                               # a BOM from a Windows editor
    GOOD.replace("{type: hangup}", "{type: hangup, description: \"😀 Ünïcödé \u202e עברית \u200d\"}"),
    GOOD.replace("{type: hangup}", "{type: hangup, description: \"x\" }") + "# ü" * 1000 + "\n",
    GOOD.replace("\n", "\r\n"),                                    # CRLF line ends
])
def test_unicode_bom_and_crlf_are_fine(text):
    flow, diags = load_flow_text(text, "u.yaml")
    assert flow is not None, [str(d) for d in diags]


def test_too_large_text_and_file(tmp_path):
    big = GOOD + "#" * MAX_FLOW_FILE_BYTES + "\n"
    flow, diags = load_flow_text(big, "big.yaml")
    assert flow is None and "too large" in diags[0].message and (diags[0].line, diags[0].col) == (1, 1)
    # multi-byte characters count as bytes, not as characters
    flow, diags = load_flow_text(GOOD + "# " + "é" * (MAX_FLOW_FILE_BYTES // 2) + "\n", "big.yaml")
    assert flow is None and "too large" in diags[0].message
    # a 1 GiB (sparse) file is refused without being read into memory
    path = tmp_path / "huge.yaml"
    with path.open("wb") as f:
        f.write(GOOD.encode())
        f.truncate(1 << 30)
    t0 = time.perf_counter()
    flow, diags = load_flow_file(path)
    assert time.perf_counter() - t0 < 2
    assert flow is None and [str(d) for d in diags] == [
        f"{path}:1:1: flow file too large (more than {MAX_FLOW_FILE_BYTES} bytes)"]


def test_non_utf8_file_error_is_located(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"flow: x\nentry: a\nnodes:\n  a: {type: hangup, description: caf\xe9}\n")
    flow, diags = load_flow_file(path)
    assert flow is None
    assert [str(d) for d in diags] == [f"{path}:4:37: not UTF-8 text: invalid continuation byte at byte 60"]
    path.write_bytes(b"\xff\xfe" + "flow: x\n".encode("utf-16-le"))        # UTF-16 with a BOM
    flow, diags = load_flow_file(path)
    assert flow is None and "not UTF-8" in diags[0].message


def test_node_count_limit_is_reported_not_hit_by_a_large_legit_flow():
    nodes = "".join(f"  n{i}: {{type: play, prompt: sound:hello-world, next: n{i + 1}}}\n" for i in range(500))
    text = f"flow: x\nentry: n0\nnodes:\n{nodes}  n500: {{type: hangup}}\n"
    flow, diags = load_flow_text(text, "long.yaml")
    assert flow is not None, [str(d) for d in diags][:3]
    flat = "flow: x\nentry: a\nnodes:\n  a: {type: hangup}\ndescription: [" + "1," * MAX_YAML_NODES + "1]\n"
    flow, diags = load_flow_text(flat, "flat.yaml")
    assert flow is None and any(f"more than {MAX_YAML_NODES}" in d.message for d in diags)


# ------------------------------------------------------------------------------------ the registry
@pytest.fixture
def registry(tmp_path):
    (tmp_path / "main.yaml").write_text(GOOD)
    reg = FlowRegistry(tmp_path, {"100": "main"}, "main")
    assert reg.reload().ok
    return reg


@pytest.mark.parametrize("name", list(HOSTILE))
def test_bad_reload_keeps_the_running_flows(registry, name, caplog):
    version = registry.current.version
    (registry.flow_dir / "main.yaml").write_text(HOSTILE[name][0], encoding="utf-8", errors="surrogatepass")
    result = registry.reload()
    assert not result.ok and result.version == version and registry.current.version == version
    assert registry.flow_for("100") == (registry.current, "main")
    for e in result.errors:
        assert _DIAG.match(e), e
    assert any(r.levelname == "ERROR" and "stays in service" in r.getMessage() for r in caplog.records)
    (registry.flow_dir / "main.yaml").write_text(GOOD.replace("hangup}", "hangup, description: back}"))
    assert registry.reload().ok and registry.current.version != version


def test_undecodable_and_oversized_files_in_the_directory(registry):
    version = registry.current.version
    (registry.flow_dir / "bad.yaml").write_bytes(b"flow: bad\nentry: \xff\xfe\n")
    result = registry.reload()
    assert not result.ok and registry.current.version == version
    assert any(e.startswith(f"{registry.flow_dir / 'bad.yaml'}:2:8: not UTF-8") for e in result.errors), result
    (registry.flow_dir / "bad.yaml").write_bytes(b"#" * (MAX_FLOW_FILE_BYTES + 1))
    result = registry.reload()
    assert not result.ok and any("too large" in e for e in result.errors)
    assert registry.current.version == version


def test_a_loader_crash_is_a_refused_reload_not_an_exception(registry, monkeypatch, caplog):
    version = registry.current.version

    def boom(*a, **k):
        raise RuntimeError("loader bug")
    monkeypatch.setattr("ivr.calls.flows.load_flow_dir", boom)
    result = registry.reload()
    assert not result.ok and result.version == version and registry.current.version == version
    assert result.errors and "RuntimeError" in result.errors[0]


async def test_watch_survives_a_failing_reload(registry, monkeypatch):
    calls = []

    def reload():
        calls.append(1)
        raise RuntimeError("disk on fire")
    monkeypatch.setattr(registry, "changed_on_disk", lambda: True)
    monkeypatch.setattr(registry, "reload", reload)
    task = asyncio.create_task(registry.watch(interval=0.01))
    try:
        for _ in range(200):
            if len(calls) >= 3:
                break
            await asyncio.sleep(0.01)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert len(calls) >= 3       # kept watching after the first failure


def test_load_flow_dir_skips_a_symlink_loop_a_dangling_link_and_a_directory_named_yaml(tmp_path):
    (tmp_path / "main.yaml").write_text(GOOD)
    (tmp_path / "dir.yaml").mkdir()
    (tmp_path / "loop.yaml").symlink_to(tmp_path / "loop.yaml")
    (tmp_path / "gone.yaml").symlink_to(tmp_path / "nowhere")
    flowset, diags = load_flow_dir([tmp_path])
    assert flowset is not None and list(flowset.names) == ["main"], [str(d) for d in diags]


def test_validate_cli_on_hostile_files_prints_located_errors(tmp_path, capsys):
    from ivr.flow.cli import validate_main

    (tmp_path / "laughs.yaml").write_text(_billion_laughs())
    (tmp_path / "deep.yaml").write_text(HOSTILE["deep lists"][0])
    (tmp_path / "latin1.yaml").write_bytes(b"flow: x\nentry: caf\xe9\n")
    assert validate_main([str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert f"{tmp_path / 'laughs.yaml'}:" in out and f"{tmp_path / 'deep.yaml'}:3:" in out
    assert f"{tmp_path / 'latin1.yaml'}:2:11: not UTF-8" in out
    assert "Traceback" not in out


def test_simulate_cli_with_a_digit_flood(tmp_path, capsys):
    from ivr.flow.cli import simulate_main

    flow = tmp_path / "f.yaml"
    flow.write_text("flow: f\nentry: pin\nnodes:\n  pin: {type: collect, variable: pin, secure: true, "
                    "max_length: 4, next: bye}\n  bye: {type: hangup}\n")
    assert simulate_main([str(flow), "--at", "2025-03-04T10:00:00", "--digits", "9753" * 2500]) == 0
    out = capsys.readouterr().out
    assert "9753" not in out and "input pin=***" in out and max(map(len, out.splitlines())) < 2000
