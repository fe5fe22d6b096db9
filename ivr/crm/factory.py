"""Build the configured CRM backend from the ``crm:`` config section.

What it is for: one entry point for the server, ``crm_from_config(d)``, which
returns a ``GuardedLookup`` (call-safe: time-boxed, never raises; any failure
gives an unknown caller, so the flow takes its default route) over either the
embedded SQLite store, the HTTP adapter (with a local SQLite interaction
history), or nothing (``backend: none``). Every unknown key is rejected with a
message naming it, so a typo does not silently disable a feature.

Also ``load_routing(path)``: the routing policy YAML (``config/crm/routing.yaml``).
Construction is synchronous (start-up, before calls are served), so loading the
sample data here may block briefly; lookups later never do.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

from ivr.crm.errors import CrmConfigError
from ivr.crm.http import HttpCrm, HttpCrmConfig
from ivr.crm.lookup import CrmLookup, CrmRecorder, CrmStats, GuardedLookup, NullCrm
from ivr.crm.quality import ContactQualityReporter
from ivr.crm.rules import RoutingPolicy, routing_from_dict
from ivr.crm.store import SqliteCrm

from .errors import check_keys

__all__ = [
    "TOP_LEVEL_KEYS", "CrmConfigError", "contact_quality_from_config", "crm_from_config", "load_routing",
]

log = logging.getLogger("ivr.crm")

TOP_LEVEL_KEYS = frozenset(
    {
        "backend",
        "default_region",
        "budget_ms",
        "repeat_window_hours",
        "report_window_hours",
        "report_interval_seconds",
        "last_agent_window_days",
        "sqlite",
        "http",
        "history",
    }
)
_SQLITE_KEYS = frozenset({"path", "sample_data"})
_HISTORY_KEYS = frozenset({"path"})
_BACKENDS = ("sqlite", "http", "none")


_keys = check_keys


def _positive(where: str, v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float) or v <= 0:
        raise CrmConfigError(f"{where}: expected a number > 0, got {v!r}")
    return float(v)


def crm_from_config(
    d: Mapping[str, Any] | None,
    *,
    base_dir: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    stats: CrmStats | None = None,
    recorder: CrmRecorder | None = None,
) -> GuardedLookup:
    """Build the CRM described by ``d`` (the ``crm:`` section; None = disabled).

    ``recorder`` (the app's metrics) hears of every lookup, labelled with the configured backend
    (``sqlite``, ``http`` or ``null`` for ``none``).

    Relative paths are resolved against ``base_dir`` (the config file's folder).
    Raises ``CrmConfigError`` for bad configuration, at start-up, never later.
    """
    if d is not None and isinstance(d, Mapping) and set(d) == {"crm"}:
        d = d["crm"]
    d = _keys("crm", d, TOP_LEVEL_KEYS)
    env = os.environ if env is None else env
    base = Path(base_dir) if base_dir is not None else Path.cwd()
    stats = stats if stats is not None else CrmStats()

    backend_name = d.get("backend", "sqlite" if d else "none")
    if backend_name not in _BACKENDS:
        raise CrmConfigError(f"crm.backend: {backend_name!r} is not one of {list(_BACKENDS)}")
    region = d.get("default_region", "GB")
    if not isinstance(region, str) or len(region) != 2 or not region.isalpha():
        raise CrmConfigError(
            f"crm.default_region: expected a two-letter country code such as GB, got {region!r}"
        )
    region = region.upper()
    repeat_window = _positive("crm.repeat_window_hours", d.get("repeat_window_hours", 24)) * 3600.0
    last_agent_window = _positive("crm.last_agent_window_days", d.get("last_agent_window_days", 30)) * 86400.0
    _positive("crm.report_window_hours", d.get("report_window_hours", 24))     # checked now, used by
    _positive("crm.report_interval_seconds", d.get("report_interval_seconds", 60))  # the quality reporter

    def path_of(where: str, value: Any) -> str:
        if not isinstance(value, str) or not value:
            raise CrmConfigError(f"{where}: expected a file path or ':memory:'")
        if value == ":memory:":
            return value
        p = Path(value)
        return str(p if p.is_absolute() else base / p)

    def store(path: str) -> SqliteCrm:
        return SqliteCrm(
            path,
            default_region=region,
            repeat_window_seconds=repeat_window,
            last_agent_window_seconds=last_agent_window,
            stats=stats,
        )

    backend: CrmLookup
    if backend_name == "none":
        for section in ("sqlite", "http", "history"):
            if d.get(section):
                raise CrmConfigError(f"crm.{section}: given but crm.backend is 'none'")
        backend = NullCrm(stats)
    elif backend_name == "sqlite":
        if d.get("http") or d.get("history"):
            raise CrmConfigError("crm.http/crm.history: given but crm.backend is 'sqlite'")
        s = _keys("crm.sqlite", d.get("sqlite"), _SQLITE_KEYS)
        sqlite = store(path_of("crm.sqlite.path", s.get("path", ":memory:")))
        sample = s.get("sample_data")
        if sample is not None:
            sample_path = path_of("crm.sqlite.sample_data", sample)
            try:
                report = sqlite.load_file_sync(sample_path)
            except (OSError, ValueError) as exc:
                raise CrmConfigError(f"crm.sqlite.sample_data: {exc}") from None
            if not report.ok:
                raise CrmConfigError(
                    f"crm.sqlite.sample_data: {report.summary()}: " + "; ".join(map(str, report.rejected[:5]))
                )
        backend = sqlite
    else:
        if d.get("sqlite"):
            raise CrmConfigError(
                "crm.sqlite: given but crm.backend is 'http' (use crm.history for local history)"
            )
        if not d.get("http"):
            raise CrmConfigError("crm.http: required when crm.backend is 'http'")
        try:
            cfg = HttpCrmConfig.from_dict(d["http"], env=env, default_region=region)
        except ValueError as exc:
            raise CrmConfigError(str(exc)) from None
        h = _keys("crm.history", d.get("history"), _HISTORY_KEYS)
        history = store(path_of("crm.history.path", h.get("path", ":memory:")))
        backend = HttpCrm(cfg, history=history, stats=stats)

    default_budget = 500.0
    if isinstance(backend, HttpCrm):
        # The request timeout plus room for the local history query and scheduling.
        default_budget = backend.config.timeout_seconds * 1000.0 + 200.0
    budget_ms = _positive("crm.budget_ms", d.get("budget_ms", default_budget))
    log.info("CRM backend %s (region %s, lookup budget %.0f ms)", backend_name, region, budget_ms)
    return GuardedLookup(backend, budget_seconds=budget_ms / 1000.0, default_region=region, stats=stats,
                         recorder=recorder, backend_name="null" if backend_name == "none" else backend_name)


def contact_quality_from_config(
    d: Mapping[str, Any] | None, crm: GuardedLookup, sink: Callable[[Mapping[str, Any]], None]
) -> ContactQualityReporter:
    """The first-contact resolution / repeat-caller reporter for ``crm``'s history: report window
    ``crm.report_window_hours`` (default 24), repeat window ``crm.repeat_window_hours`` (default 24),
    refreshed every ``crm.report_interval_seconds`` (default 60)."""
    d = d or {}
    return ContactQualityReporter(
        crm,
        sink,
        window_seconds=_positive("crm.report_window_hours", d.get("report_window_hours", 24)) * 3600.0,
        repeat_window_seconds=_positive("crm.repeat_window_hours", d.get("repeat_window_hours", 24)) * 3600.0,
        interval_seconds=_positive("crm.report_interval_seconds", d.get("report_interval_seconds", 60)),
    )


def load_routing(path: str | Path) -> RoutingPolicy:
    """Read a routing policy YAML file (``routing:`` section); ``CrmConfigError`` names the bad key."""
    try:
        doc = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise CrmConfigError(f"{path}: {exc}") from None
    return routing_from_dict(doc)
