"""docker/: compose file, Dockerfiles, the Asterisk entrypoint's rendering (byte-identical to
ivr.asterisk.runner.render_configs), Prometheus config/alerts (promtool), Grafana dashboard queries (every
metric they use is really exported by ivr.metrics, every query parses as PromQL).

Tools that may be missing are skipped with the reason: promtool (Debian package ``prometheus``),
``docker compose`` (no Docker engine or compose plugin on the dev machine).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from ivr.asterisk.runner import TEMPLATE_DIR, render_configs
from ivr.config import AgentSipConfig, AriConfig, AsteriskConfig, Config
from ivr.metrics import Metrics, QueueSnapshot

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
ENTRYPOINT = DOCKER / "asterisk-entrypoint.sh"
DASHBOARD = DOCKER / "grafana" / "dashboards" / "contact-center.json"
PROM = DOCKER / "prometheus"
DOCS = ROOT / "docs" / "metrics.md"


def run(cmd: list[str], timeout: float = 60, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=timeout, **kw)


def promtool() -> str:
    exe = shutil.which("promtool")
    if exe is None:
        pytest.skip("promtool not on PATH (Debian package 'prometheus'; scripts/install.sh installs it)")
    return exe


# ------------------------------------------------------------------------------------------ compose
@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((DOCKER / "compose.yaml").read_text())


def test_compose_services(compose):
    services = compose["services"]
    assert set(services) == {"asterisk", "app", "prometheus", "grafana"}
    for name, svc in services.items():
        assert svc.get("network_mode") == "host", name      # documented choice: SIP/RTP and loopback binds
    assert services["app"]["depends_on"]["asterisk"]["condition"] == "service_healthy"
    assert services["app"]["command"] == ["run", "--config", "/etc/ivr/ivr.yaml"]


def test_compose_files_exist(compose):
    for name, svc in compose["services"].items():
        build = svc.get("build")
        if build:
            ctx = (DOCKER / build["context"]).resolve()
            assert ctx == ROOT, name
            assert (ctx / build["dockerfile"]).is_file(), name
        for vol in svc.get("volumes", []):
            src = vol.split(":", 1)[0]
            if src.startswith("."):
                assert (DOCKER / src).exists(), f"{name}: volume source {src} missing"


def test_compose_has_no_hard_coded_secret(compose):
    text = (DOCKER / "compose.yaml").read_text()
    for name, svc in compose["services"].items():
        for key, value in (svc.get("environment") or {}).items():
            if re.search(r"PASSWORD|TOKEN|SECRET", key):
                assert re.fullmatch(r"\$\{[A-Z_]+:\?[^}]+\}", str(value)), f"{name}.{key} must come from .env"
    assert "IVR_ARI_PASSWORD" in text
    for example in ("env.example", "agents.env.example"):
        for line in (DOCKER / example).read_text().splitlines():
            if re.match(r"[A-Z_]*(PASSWORD|TOKEN)=", line):
                assert line.endswith("="), f"{example} must not carry a secret: {line}"
    ignored = (DOCKER / ".gitignore").read_text().splitlines()
    assert ".env" in ignored and "agents.env" in ignored
    # each container gets only the secrets it uses
    assert "GRAFANA_ADMIN_PASSWORD" not in str(compose["services"]["app"])
    assert "GRAFANA_ADMIN_PASSWORD" not in str(compose["services"]["asterisk"])


def test_compose_config_with_a_docker_client(tmp_path):
    docker = shutil.which("docker")
    legacy = False
    if docker and run([docker, "compose", "version"]).returncode == 0:
        cmd = [docker, "compose"]
    elif shutil.which("docker-compose"):
        cmd, legacy = [shutil.which("docker-compose")], True       # Debian 12's docker-compose 1.29
    else:
        pytest.skip("no 'docker compose' (compose plugin) nor docker-compose here: compose file not checked")
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path)}   # only .env's secrets
    work = tmp_path / "docker"
    shutil.copytree(DOCKER, work)
    (work / ".env").write_text("IVR_ARI_PASSWORD=x\nIVR_ADMIN_TOKEN=y\nGRAFANA_ADMIN_PASSWORD=z\n")
    (work / "agents.env").write_text("IVR_AGENT_ENDPOINTS=alice\nIVR_AGENT_ALICE_PASSWORD=pw\n")
    if legacy:
        # compose 1.x predates the top-level 'name' key of the Compose Specification; validate the rest
        text = (work / "compose.yaml").read_text()
        assert "\nname: ivr\n" in text
        (work / "compose.yaml").write_text(text.replace("\nname: ivr\n", "\n"))
    r = run(cmd + ["-f", str(work / "compose.yaml"), "config", "-q"], cwd=work, env=env)
    assert r.returncode == 0, r.stderr
    (work / ".env").write_text("IVR_ADMIN_TOKEN=y\nGRAFANA_ADMIN_PASSWORD=z\n")       # a secret missing
    r = run(cmd + ["-f", str(work / "compose.yaml"), "config", "-q"], cwd=work, env=env)
    assert r.returncode != 0 and "IVR_ARI_PASSWORD" in r.stderr


# --------------------------------------------------------------------------------------- Dockerfiles
def _instructions(path: Path) -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", path.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            op, _, rest = line.partition(" ")
            out.append((op.upper(), rest.strip()))
    return out


def _copy_sources(path: Path) -> list[str]:
    srcs = []
    for op, rest in _instructions(path):
        if op == "COPY":
            parts = [p for p in rest.split() if not p.startswith("--")]
            srcs += parts[:-1]
    return srcs


@pytest.mark.parametrize("dockerfile", ["Dockerfile.app", "Dockerfile.asterisk"])
def test_dockerfile_copies_existing_files_not_ignored(dockerfile):
    path = DOCKER / dockerfile
    ignore = [ln.strip() for ln in (DOCKER / f"{dockerfile}.dockerignore").read_text().splitlines()
              if ln.strip() and not ln.startswith("#")]
    assert ignore[0] == "*"          # allow-list: only what the image needs goes into the build context
    allowed = [p[1:].rstrip("/") for p in ignore if p.startswith("!")]
    srcs = _copy_sources(path)
    assert srcs
    for src in srcs:
        assert (ROOT / src).exists(), f"{dockerfile}: COPY {src}: no such file in the repository"
        s = src.rstrip("/")
        assert any(s == a or s.startswith(a + "/") for a in allowed), f"{dockerfile}: {src} is dockerignored"


def test_dockerfile_app():
    ins = _instructions(DOCKER / "Dockerfile.app")
    assert ins[0] == ("FROM", "python:3.11-slim")
    assert ("ENTRYPOINT", '["ivr"]') in ins
    assert ("CMD", '["run", "--config", "/etc/ivr/ivr.yaml"]') in ins
    assert any(op == "RUN" and "pip install ." in rest for op, rest in ins)
    assert any(op == "USER" for op, _ in ins)            # not root


def test_dockerfile_asterisk():
    ins = _instructions(DOCKER / "Dockerfile.asterisk")
    assert ins[0] == ("FROM", "debian:sid")
    run = " ".join(rest for op, rest in ins if op == "RUN")
    assert "Acquire::Check-Valid-Until" in run and '"false"' in run
    assert re.search(r"install .*\basterisk asterisk-moh-opsound-gsm\b", run)
    assert ("COPY", "config/asterisk/ /usr/share/ivr/asterisk/") in ins
    assert ("ENTRYPOINT", '["/usr/local/bin/asterisk-entrypoint.sh"]') in ins


# ----------------------------------------------------------------------------- Asterisk entrypoint
TRICKY = "p&w\\1|/$HOME'\"x y"        # every character sed/awk -v/sh would mangle


def _env(**extra: str) -> dict[str, str]:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    env.update(extra)
    return env


def _run_entrypoint(src: Path, dst: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return run(["sh", str(ENTRYPOINT), "render", str(src), str(dst)], env=env)


def _rendered(dst: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted(dst.glob("*.conf"))}


@pytest.mark.parametrize("agents", [(), (("alice", "s3cret"), ("bob-2", TRICKY))])
def test_entrypoint_renders_exactly_like_the_runner(tmp_path, monkeypatch, agents):
    for name, pw in agents:
        monkeypatch.setenv(f"IVR_AGENT_{name.upper().replace('-', '_')}_PASSWORD", pw)
    cfg = Config(
        asterisk=AsteriskConfig(bind_address="10.1.2.3", sip_port=5070, http_port=8090, rtp_start=30000,
                                rtp_end=30100),
        ari=AriConfig(user="ivr-user", password="ari&" + TRICKY, app="my_app"),
        agents=tuple({"id": name} for name, _ in agents),
    )
    assert [a.sip_password for a in cfg.agent_sip()] == [pw for _, pw in agents]
    expected = render_configs(cfg, "/srv/ivr")

    env = _env(ASTDIR="/srv/ivr", ARI_USER="ivr-user", ARI_PASSWORD="ari&" + TRICKY, BIND_ADDRESS="10.1.2.3",
               HTTP_PORT="8090", SIP_PORT="5070", RTP_START="30000", RTP_END="30100", APP="my_app",
               IVR_AGENT_ENDPOINTS=" ".join(name for name, _ in agents))
    for name, pw in agents:
        env[f"IVR_AGENT_{name.upper().replace('-', '_')}_PASSWORD"] = pw
    r = _run_entrypoint(TEMPLATE_DIR, tmp_path / "etc", env)
    assert r.returncode == 0, r.stderr
    got = _rendered(tmp_path / "etc")
    assert list(got) == list(expected)
    for name in expected:
        assert got[name] == expected[name], name
    for p in (tmp_path / "etc").glob("*.conf"):
        assert p.stat().st_mode & 0o077 == 0, f"{p.name} is readable by others (holds passwords)"
    if agents:
        assert "password = " + TRICKY + "\n" in got["pjsip.conf"]


def test_entrypoint_defaults_match_the_sample_config(tmp_path):
    from ivr.config import load_config

    cfg = load_config(ROOT / "config" / "ivr.yaml", env={"IVR_ARI_PASSWORD": "pw"})
    cfg = Config(asterisk=cfg.asterisk, ari=cfg.ari)            # no agents
    r = _run_entrypoint(TEMPLATE_DIR, tmp_path, _env(ARI_PASSWORD="pw"))
    assert r.returncode == 0, r.stderr
    assert _rendered(tmp_path) == render_configs(cfg, "/srv/ivr")


@pytest.mark.parametrize("env,message", [
    ({}, "ARI_PASSWORD is empty"),
    ({"ARI_PASSWORD": "a\nb"}, "contains a newline"),
    ({"ARI_PASSWORD": "x", "SIP_PORT": "50x"}, "SIP_PORT must be a port"),
    ({"ARI_PASSWORD": "x", "IVR_AGENT_ENDPOINTS": "alice"}, "IVR_AGENT_ALICE_PASSWORD"),
    ({"ARI_PASSWORD": "x", "IVR_AGENT_ENDPOINTS": "al]ice"}, "only letters"),
    ({"ARI_PASSWORD": "x", "IVR_AGENT_ENDPOINTS": "alice", "IVR_AGENT_ALICE_PASSWORD": "a\n[evil]"},
     "contains a newline"),
])
def test_entrypoint_refuses_bad_values(tmp_path, env, message):
    r = _run_entrypoint(TEMPLATE_DIR, tmp_path / "etc", _env(**env))
    assert r.returncode != 0
    assert message in r.stderr


def test_entrypoint_refuses_an_unknown_placeholder(tmp_path):
    src = tmp_path / "tpl"
    shutil.copytree(TEMPLATE_DIR, src)
    (src / "extra.conf").write_text("[x]\nvalue = @@NEW_THING@@\n")
    r = _run_entrypoint(src, tmp_path / "etc", _env(ARI_PASSWORD="x"))
    assert r.returncode != 0 and "placeholders without a value" in r.stderr


def test_entrypoint_shellcheck():
    exe = shutil.which("shellcheck")
    if exe is None:
        pytest.skip("shellcheck not installed (optional Debian package 'shellcheck')")
    r = run([exe, "-s", "sh", str(ENTRYPOINT)])
    assert r.returncode == 0, r.stdout


def test_agent_sip_config_shape_is_what_the_entrypoint_assumes(monkeypatch):
    # endpoint name = PJSIP/<id> by default, password variable built from the id as the entrypoint does
    monkeypatch.setenv("IVR_AGENT_BOB_2_PASSWORD", "pw")
    cfg = Config(agents=({"id": "bob-2"},))
    assert cfg.agent_sip()[0] == AgentSipConfig("bob-2", "PJSIP/bob-2", "pw")


# ------------------------------------------------------------------------------ exported metric names
class _Provider:
    def queue_snapshots(self):
        return [QueueSnapshot("support", 1, 5.0, {"logged_in": 2, "available": 1, "paused": 1}, {"lunch": 1},
                              20.0, 0.8)]

    def active_calls(self):
        return 1

    def active_bridges(self):
        return 1

    def ari_connected(self):
        return True


@pytest.fixture(scope="module")
def exported() -> set[str]:
    m = Metrics(_Provider(), registry=CollectorRegistry())
    m.declare_queue("support", 20)
    m.declare_flow("main", ["menu"])
    m.call_entered_flow("main")
    m.node_exit("main", "menu", "queue")
    m.queue_entered("support")
    m.queue_refused("support", "full")
    m.queue_left("support", "answered", 4)
    m.talk_finished("support", 100)
    m.wrap_up_finished("support", 10)
    m.routing_decision(0.0001)
    m.crm_lookup("http", "found", 0.02)
    m.crm_error("http", "timeout")
    from ivr.crm.rules import QueueContactQuality
    m.contact_quality({"support": QueueContactQuality("support", 3, 1, 6, 2)})
    m.ari_reconnected()
    m.event_lag(0.01)
    names = {s.name for fam in text_string_to_metric_families(m.render().decode()) for s in fam.samples}
    assert "ivr_queue_agents_needed" in names and "ivr_queue_wait_seconds_bucket" in names
    assert "ivr_queue_first_contact_resolution_ratio" in names and "ivr_queue_repeat_caller_ratio" in names
    return names


_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool",
             "offset", "inf", "nan"}


def metric_names(expr: str) -> set[str]:
    """Metric names used in a PromQL expression (strings, matchers, ranges, groupings and calls removed)."""
    m = re.match(r"\s*label_values\(\s*([A-Za-z_:][A-Za-z0-9_:]*)", expr)
    if m:
        return {m.group(1)}
    s = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    s = re.sub(r"\{[^}]*\}", " ", s)
    s = re.sub(r"\[[^\]]*\]", " ", s)
    s = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", s)
    names = set(re.findall(r"(?<![\w$:.])[A-Za-z_:][A-Za-z0-9_:]*\b(?!\s*\()", s))
    return names - _KEYWORDS


def test_metric_name_extraction():
    expr = ('histogram_quantile(0.99, sum by (le) (rate(ivr_routing_decision_seconds_bucket{queue=~"$q"}'
            '[5m]))) / on (queue) group_left max by (queue) (ivr_x) > bool 2 and up{job="a by b"}')
    assert metric_names(expr) == {"ivr_routing_decision_seconds_bucket", "ivr_x", "up"}
    assert metric_names("label_values(ivr_queue_calls_waiting, queue)") == {"ivr_queue_calls_waiting"}


def _dashboard_exprs() -> list[str]:
    dash = json.loads(DASHBOARD.read_text())
    exprs = []

    def walk(panels):
        for p in panels:
            exprs.extend(t["expr"] for t in p.get("targets", []) if t.get("expr"))
            walk(p.get("panels", []))

    walk(dash["panels"])
    for var in dash["templating"]["list"]:
        if var["type"] == "query":
            q = var["query"]
            exprs.append(q["query"] if isinstance(q, dict) else q)
    return exprs


def test_dashboard_uses_only_exported_metrics(exported):
    exprs = _dashboard_exprs()
    assert len(exprs) > 30
    used = set().union(*(metric_names(e) for e in exprs))
    missing = sorted(n for n in used if n not in exported)
    assert not missing, f"dashboard queries metrics ivr.metrics does not export: {missing}"
    # the wallboard figures are all there
    for n in ("ivr_queue_calls_waiting", "ivr_queue_oldest_wait_seconds",
              "ivr_queue_calls_answered_within_sl_total", "ivr_queue_wait_seconds_bucket",
              "ivr_queue_calls_abandoned_total", "ivr_queue_agents",
              "ivr_talk_seconds_sum", "ivr_queue_agents_needed", "ivr_routing_decision_seconds_bucket",
              "ivr_crm_errors_total", "ivr_ari_connected"):
        assert n in used, n


def test_dashboard_structure():
    dash = json.loads(DASHBOARD.read_text())
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    ds = yaml.safe_load((DOCKER / "grafana" / "provisioning" / "datasources" / "prometheus.yml").read_text())
    uid = ds["datasources"][0]["uid"]
    for p in dash["panels"]:
        if p["type"] != "row":
            assert p["datasource"]["uid"] == uid
            g = p["gridPos"]
            assert 0 <= g["x"] and g["x"] + g["w"] <= 24
    prov = yaml.safe_load((DOCKER / "grafana" / "provisioning" / "dashboards" / "ivr.yml").read_text())
    assert prov["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"


def _alert_exprs() -> list[str]:
    rules = yaml.safe_load((PROM / "alerts.yml").read_text())
    return [r["expr"] for g in rules["groups"] for r in g["rules"]]


def test_alerts_use_only_exported_metrics(exported):
    used = set().union(*(metric_names(e) for e in _alert_exprs()))
    missing = sorted(n for n in used - {"up"} if n not in exported)
    assert not missing, f"alerts use metrics ivr.metrics does not export: {missing}"
    groups = yaml.safe_load((PROM / "alerts.yml").read_text())["groups"]
    alerts = {r["alert"] for g in groups for r in g["rules"]}
    assert {"IvrServiceLevelBelowTarget", "IvrCallsWaitingNoAgentAvailable", "IvrOldestWaitTooLong",
            "IvrAriDisconnected", "IvrCrmFailing"} <= alerts


def _docs_promql() -> list[str]:
    return re.findall(r"```promql\n(.*?)```", DOCS.read_text(), re.DOTALL)


def test_docs_queries_use_only_exported_metrics(exported):
    exprs = _docs_promql()
    assert len(exprs) >= 6
    used = set().union(*(metric_names(e) for e in exprs))
    missing = sorted(n for n in used if n not in exported)
    assert not missing, f"docs/metrics.md queries metrics ivr.metrics does not export: {missing}"


def test_docs_list_every_exported_family(exported):
    text = DOCS.read_text()
    families = {re.sub(r"_(bucket|sum|count|total)$", "", n) for n in exported}
    missing = sorted(f for f in families if f"`{f}" not in text)
    assert not missing, f"docs/metrics.md does not document: {missing}"


# -------------------------------------------------------------------------------------------- promtool
def test_promtool_check_rules_and_config():
    exe = promtool()
    r = run([exe, "check", "rules", "alerts.yml"], cwd=PROM)
    assert r.returncode == 0, r.stdout + r.stderr
    r = run([exe, "check", "config", "prometheus.yml"], cwd=PROM)
    assert r.returncode == 0, r.stdout + r.stderr


def test_promtool_alert_unit_tests():
    exe = promtool()
    r = run([exe, "test", "rules", "alerts_test.yml"], cwd=PROM, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    tests = yaml.safe_load((PROM / "alerts_test.yml").read_text())["tests"]
    firing = {t["alertname"] for case in tests for t in case.get("alert_rule_test", []) if t["exp_alerts"]}
    assert len(firing) >= 2


def _grafana_to_promql(expr: str) -> str:
    return (expr.replace("$__range", "1h").replace("$__rate_interval", "1m").replace("${sl_threshold}", "20")
            .replace("$queue", ".*"))


def test_dashboard_and_docs_queries_parse_as_promql(tmp_path):
    exe = promtool()
    exprs = [e for e in _dashboard_exprs() if not e.startswith("label_values")] + _docs_promql()
    rules = {"groups": [{"name": "parse", "rules": [{"record": f"ivr:parse_check_{i}",
                                                     "expr": _grafana_to_promql(e)}
                                                    for i, e in enumerate(exprs)]}]}
    path = tmp_path / "parse.yml"
    path.write_text(yaml.safe_dump(rules))
    r = run([exe, "check", "rules", str(path)])
    assert r.returncode == 0, r.stdout + r.stderr
