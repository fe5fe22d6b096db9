"""The flows in service: load, validate, route by dialed number, hot reload.

A reload (file change, SIGHUP or the admin API) loads every flow file into a new immutable FlowSet. If it
has errors, they are logged and kept for the API, and the running FlowSet stays in service. Calls keep the
FlowSet they started with; new calls get the new one.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path

from ..flow import Diagnostic, FlowSet, load_flow_dir
from ..flow.model import Destinations

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReloadResult:
    ok: bool
    version: str
    errors: tuple[str, ...]
    warnings: tuple[str, ...]

    def as_dict(self) -> dict:
        return {"ok": self.ok, "version": self.version, "errors": list(self.errors),
                "warnings": list(self.warnings)}


class FlowRegistry:
    def __init__(self, flow_dir: Path, routes: dict[str, str], default: str,
                 known_queues: set[str] | None = None, known_sounds: set[str] | None = None,
                 known_destinations: Destinations | None = None) -> None:
        self.flow_dir = flow_dir
        self.routes = dict(routes)
        self.default = default
        self.known_queues = known_queues
        self.known_sounds = known_sounds
        self.known_destinations = known_destinations
        self.current: FlowSet | None = None
        self.last_result: ReloadResult | None = None
        self._mtimes: dict[str, float] = {}

    def _snapshot_mtimes(self) -> dict[str, float]:
        out = {}
        for p in sorted(self.flow_dir.glob("*.y*ml")):
            try:
                out[str(p)] = p.stat().st_mtime_ns
            except OSError:
                pass
        return out

    def reload(self) -> ReloadResult:
        mtimes = self._snapshot_mtimes()
        try:
            flowset, diags = load_flow_dir([self.flow_dir], known_queues=self.known_queues,
                                           known_sounds=self.known_sounds,
                                           known_destinations=self.known_destinations)
        except Exception as e:   # a loader bug must not take the running flows down
            log.exception("flow reload failed")
            flowset, diags = None, [Diagnostic(str(self.flow_dir), 1, 1, f"cannot load flows: {type(e).__name__}")]
        errors = tuple(str(d) for d in diags if d.is_error)
        warnings = tuple(d.format() for d in diags if not d.is_error)
        problems = []
        if flowset is not None:
            for name in {self.default, *self.routes.values()}:
                if flowset.get(name) is None:
                    problems.append(f"{self.flow_dir}: config routes calls to flow {name!r}, which does not exist")
        if flowset is None or problems:
            errors = errors + tuple(problems)
            result = ReloadResult(False, self.current.version if self.current else "", errors, warnings)
            log.error("flow reload refused (%d error(s)); %s stays in service:\n  %s", len(errors),
                      f"version {self.current.version}" if self.current else "no flow", "\n  ".join(errors))
        else:
            self.current = flowset
            result = ReloadResult(True, flowset.version, (), warnings)
            log.info("flows loaded: %s (version %s)", ", ".join(flowset.names), flowset.version)
            for w in warnings:
                log.warning("%s", w)
        self._mtimes = mtimes
        self.last_result = result
        return result

    def flow_for(self, dialed: str) -> tuple[FlowSet, str] | None:
        """The FlowSet snapshot and flow name that answer a call to `dialed`."""
        if self.current is None:
            return None
        return self.current, self.routes.get(dialed, self.default)

    def queue_users(self, queue: str) -> list[str]:
        """The flows in service with a node naming ``queue`` (a queue or callback node): it must stay."""
        cur = self.current
        if cur is None:
            return []
        return sorted(f.name for f in cur.flows.values()
                      if any(getattr(n, "queue", None) == queue for n in f.nodes.values()))

    def changed_on_disk(self) -> bool:
        return self._snapshot_mtimes() != self._mtimes

    async def watch(self, interval: float = 1.0) -> None:
        """Poll the flow directory (no inotify dependency) and reload on change."""
        while True:
            await asyncio.sleep(interval)
            try:
                if self.changed_on_disk():
                    log.info("flow files changed on disk; reloading")
                    self.reload()
            except Exception:   # keep watching whatever one reload did
                log.exception("flow watch: reload failed")


def diagnostics_text(diags: list[Diagnostic]) -> list[str]:
    return [d.format() for d in diags]
