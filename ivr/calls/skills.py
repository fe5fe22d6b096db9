"""Skill maps that come from outside the router's own config (a flow's queue node, a CRM rule, a state
saved on a channel by an earlier process), made safe for ``ivr.acd.Call``."""

from __future__ import annotations

import logging
import math
from typing import Any

from ..acd.agent import SKILL_MAX, SKILL_MIN

log = logging.getLogger(__name__)


def skill_levels(skills: Any) -> dict[str, int]:
    """Required skill levels of a saved restart state: a level off the ACD's scale (an older server clamped
    0-100 flow levels; a hand-edited or corrupt state) is logged and dropped, not clamped and not fatal."""
    out = {}
    for s, lv in dict(skills or {}).items():
        if isinstance(s, str) and s and isinstance(lv, int) and not isinstance(lv, bool) \
                and SKILL_MIN <= lv <= SKILL_MAX:
            out[s] = lv
        else:
            log.warning("saved queue state: dropping required skill %r level %r (not %d..%d)", s, lv,
                        SKILL_MIN, SKILL_MAX)
    return out


def skill_weights(skills: Any) -> dict[str, float]:
    """Optional skill weights (a flow's ``optional_skills``, a saved state) clamped to 0..100."""
    out = {}
    for s, w in dict(skills or ()).items():
        try:
            w = float(w)
        except (TypeError, ValueError):
            continue
        if not math.isnan(w):
            out[str(s)] = max(0.0, min(100.0, w))
    return out
