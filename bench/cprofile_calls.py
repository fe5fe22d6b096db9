"""Python function calls per completed call, from a profile of the app (`bench/compare.py --cprofile PATH`).

    .venv/bin/python bench/cprofile_calls.py PATH CALLS [--top 30]

CALLS: the calls the app completed while profiled (the sum of the runs' "completed" figures). Start-up
work (the flow and config YAML, the sample CRM's import, phone-number metadata) is counted apart, so the
per-call figure is the call path's. A count of calls is deterministic where this VM's CPU figures drift by
up to 20 % between runs: a change that removes work shows here whatever the machine does.
"""

from __future__ import annotations

import argparse
import pstats
from collections import Counter

STARTUP = ("yaml/", "ivr/crm/importer.py", "ivr/flow/loader.py", "phonenumbers/data/", "phonemetadata.py")


def where(filename: str) -> str:
    for marker in ("site-packages/", "/ivr/"):
        if marker in filename:
            rest = filename.split(marker, 1)[1]
            return ("ivr/" if marker == "/ivr/" else "") + rest
    return filename.rsplit("/", 1)[-1]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("profile")
    p.add_argument("calls", type=int)
    p.add_argument("--top", type=int, default=30)
    a = p.parse_args(argv)
    stats = pstats.Stats(a.profile).stats  # type: ignore[attr-defined]
    startup = total = 0
    by_fn: Counter[str] = Counter()
    for (filename, line, name), (_cc, ncalls, _tt, _ct, callers) in stats.items():
        if any(s in filename for s in STARTUP):
            startup += ncalls
            continue
        # a built-in or library function called by start-up code: those calls are start-up's
        from_startup = sum(c[1] for (f, _l, _n), c in callers.items() if any(s in f for s in STARTUP))
        startup += from_startup
        ncalls -= from_startup
        total += ncalls
        by_fn[f"{where(filename)}:{line} {name}" if filename != "~" else name] += ncalls
    print(f"function calls per call: {total / a.calls:,.0f} (start-up apart: {startup:,} in all)")
    for fn, n in by_fn.most_common(a.top):
        print(f"  {n / a.calls:9.1f}  {fn}")


if __name__ == "__main__":
    main()
