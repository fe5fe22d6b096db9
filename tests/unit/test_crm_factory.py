"""crm_from_config: backend selection and config validation (ivr.crm.factory)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ivr.crm.factory import CrmConfigError, crm_from_config
from ivr.crm.http import HttpCrm, HttpCrmConfig
from ivr.crm.lookup import GuardedLookup, NullCrm
from ivr.crm.store import SqliteCrm

HTTP = {"url": "https://crm.example/api/customers?phone={e164}"}


async def test_backends_are_built_from_config() -> None:
    none = crm_from_config(None)
    assert isinstance(none, GuardedLookup) and isinstance(none.backend, NullCrm)
    sqlite = crm_from_config({"backend": "sqlite"})
    assert isinstance(sqlite.backend, SqliteCrm)
    http = crm_from_config({"backend": "http", "http": HTTP})
    assert isinstance(http.backend, HttpCrm)
    assert http.budget_seconds == pytest.approx(0.5)  # 300 ms timeout + 200 ms
    for crm in (none, sqlite, http):
        await crm.close()


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"backend": "sqlite", "sqllite": {}}, r"crm: unknown key\(s\) \['sqllite'\]"),
        ({"backend": "mysql"}, "crm.backend"),
        ({"backend": "sqlite", "sqlite": {"file": "x"}}, r"crm.sqlite: unknown key\(s\) \['file'\]"),
        ({"backend": "sqlite", "default_region": "Britain"}, "two-letter"),
        ({"backend": "sqlite", "budget_ms": 0}, "crm.budget_ms"),
        ({"backend": "sqlite", "repeat_window_hours": "24h"}, "crm.repeat_window_hours"),
        ({"backend": "http"}, "crm.http: required"),
        ({"backend": "http", "http": {**HTTP, "timeout": 300}}, r"crm.http: unknown key\(s\) \['timeout'\]"),
        ({"backend": "http", "http": {"url": "https://crm.example/api"}}, r"must contain \{e164\}"),
        ({"backend": "http", "http": {"url": "https://crm.example/{phone}"}}, "unknown placeholder"),
        ({"backend": "http", "http": {"url": "ftp://crm.example/{e164}"}}, "http:// or https://"),
        ({"backend": "http", "http": {**HTTP, "cache": {"ttl": 5}}}, r"crm.http.cache: unknown key"),
        ({"backend": "http", "http": {**HTTP, "breaker": {"failure_threshold": 0}}}, "failure_threshold"),
        ({"backend": "http", "http": {**HTTP, "mapping": {"nmae": "x"}}}, r"crm.http.mapping: unknown key"),
        ({"backend": "http", "http": {**HTTP, "auth": {"header": "Authorization"}}}, "exactly one of"),
        ({"backend": "http", "http": {**HTTP, "history_url": "https://crm.example/{who}"}}, "history_url"),
        ({"backend": "sqlite", "http": HTTP}, "crm.backend is 'sqlite'"),
    ],
)
def test_bad_config_is_rejected_with_a_clear_message(config: dict[str, object], message: str) -> None:
    with pytest.raises(CrmConfigError, match=message):
        crm_from_config(config)


def test_auth_value_from_env_is_never_in_messages_or_repr() -> None:
    secret = "Bearer sup3r-s3cret"
    cfg = HttpCrmConfig.from_dict(
        {**HTTP, "auth": {"header": "Authorization", "value_env": "CRM_TOKEN"}}, env={"CRM_TOKEN": secret}
    )
    assert cfg.auth_value == secret
    assert "s3cret" not in repr(cfg)
    with pytest.raises(ValueError) as err:
        HttpCrmConfig.from_dict(
            {**HTTP, "auth": {"header": "Authorization", "value_env": "MISSING_VAR"}}, env={}
        )
    assert "MISSING_VAR" in str(err.value)


def test_timeouts_and_cache_settings_are_read() -> None:
    cfg = HttpCrmConfig.from_dict(
        {
            **HTTP,
            "timeout_ms": 150,
            "cache": {"ttl_seconds": 10, "negative_ttl_seconds": 2, "max_entries": 5},
            "breaker": {"failure_threshold": 2, "cooldown_seconds": 5},
            "not_found_status": 410,
        }
    )
    assert cfg.timeout_seconds == pytest.approx(0.15)
    assert (cfg.positive_ttl_seconds, cfg.negative_ttl_seconds, cfg.cache_max_entries) == (10, 2, 5)
    assert (cfg.failure_threshold, cfg.cooldown_seconds) == (2, 5)
    assert cfg.not_found_statuses == frozenset({410})
    assert cfg.host == "crm.example"


CONFIG_DIR = Path(__file__).resolve().parents[2] / "config" / "crm"


async def test_sqlite_backend_with_sample_data_answers_raw_caller_ids() -> None:
    crm = crm_from_config(
        {
            "crm": {
                "backend": "sqlite",
                "default_region": "GB",
                "sqlite": {"sample_data": "sample_customers.yaml"},
            }
        },
        base_dir=CONFIG_DIR,
    )
    try:
        r = await crm.lookup_caller("020 7946 0001")
        assert r.found and r.customer is not None and r.customer.tier == "vip"
        assert r.as_flow_vars()["customer.known"] is True
        assert (await crm.lookup_caller("anonymous")).as_flow_vars()["customer.known"] is False
    finally:
        await crm.close()


def test_bad_sample_data_stops_start_up_with_the_line(tmp_path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("customers:\n  - {customer_id: A, phones: ['+442079460001']}\n  - {customer_id: B}\n")
    with pytest.raises(CrmConfigError, match=r"line 2: phones is required"):
        crm_from_config({"backend": "sqlite", "sqlite": {"sample_data": str(bad)}})
    with pytest.raises(CrmConfigError, match="sample_data"):
        crm_from_config({"backend": "sqlite", "sqlite": {"sample_data": str(tmp_path / "missing.yaml")}})


async def test_example_config_file_is_valid() -> None:
    text = (CONFIG_DIR / "crm.example.yaml").read_text(encoding="utf-8")
    doc = yaml.safe_load(text)
    doc["crm"]["sqlite"]["path"] = ":memory:"
    sqlite = crm_from_config(doc, base_dir=CONFIG_DIR)
    assert sqlite.budget_seconds == pytest.approx(0.5)
    # The commented-out HTTP example must be valid too.
    commented = text.split("# 2)", 1)[1].splitlines()[1:]
    http_doc = yaml.safe_load("\n".join(line.removeprefix("# ") for line in commented))
    assert http_doc["crm"]["history"]["path"]
    http_doc["crm"]["history"]["path"] = ":memory:"  # never touch /var/lib from a test
    http = crm_from_config(http_doc, env={"CRM_TOKEN": "Bearer x"})
    assert isinstance(http.backend, HttpCrm)
    assert http.backend.config.history_url is not None
    assert http.backend.history is not None
    assert http.backend.history.repeat_window_seconds == 168 * 3600  # repeat_window_hours: 168
    for crm in (sqlite, http):
        await crm.close()
