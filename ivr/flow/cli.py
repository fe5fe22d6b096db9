"""``ivr validate`` and ``ivr simulate``: argument parsing and printing around the pure core.

``ivr/cli.py`` hands the arguments after the subcommand to ``validate_main``/``simulate_main``;
each returns the process exit code and prints to stdout.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from .diagnostics import Diagnostic
from .loader import flow_files, load_flow_dir
from .model import DTMF_KEYS, Destinations
from .protocol import CallInfo
from .schema import QUEUE_OUTCOMES, TRANSFER_OUTCOMES
from .simulate import Script, simulate

SOUND_SUFFIXES = (".gsm", ".wav", ".ulaw", ".alaw", ".sln", ".sln16", ".g722", ".g729", ".ogg", ".mp3", ".siren7",
                  ".siren14", ".opus")


def _names(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def sounds_in(directory: str | Path) -> set[str]:
    """Sound names (``digits/1``, ``hello-world``) of an Asterisk sounds directory for one language."""
    root = Path(directory)
    return {str(path.relative_to(root).with_suffix("")) for path in root.rglob("*")
            if path.suffix in SOUND_SUFFIXES and path.is_file()}


def _print_diagnostics(diagnostics: list[Diagnostic]) -> None:
    for diagnostic in (d for d in diagnostics if d.is_error):
        print(diagnostic)
    for diagnostic in (d for d in diagnostics if not d.is_error):
        print(diagnostic.format())


# Reads the server config for ``--config``: (queue names, transfer destinations); raises ValueError with a
# message. Given by ``ivr/cli.py`` (this pure package does not import the server's config module).
ConfigReader = Callable[[str], tuple[set[str], Destinations]]


def validate_main(argv: Sequence[str], config_reader: ConfigReader | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ivr validate", description="Check flow files and report every problem.")
    parser.add_argument("paths", nargs="+", metavar="PATH", help="flow files, or directories of *.yaml/*.yml")
    parser.add_argument("--queues", metavar="A,B", help="known queue names: any other queue is an error")
    parser.add_argument("--sounds", metavar="A,B", help="known sound names: any other 'sound:' is an error")
    parser.add_argument("--sounds-dir", metavar="DIR", action="append", default=[],
                        help="Asterisk sounds directory for one language (e.g. .../sounds/en); repeatable")
    parser.add_argument("--config", metavar="FILE", help="the server config (config/ivr.yaml): its queues, "
                        "extensions, agents' phones and trunks are the known ones")
    args = parser.parse_args(list(argv))

    known_queues = None if args.queues is None else set(_names(args.queues))
    known_destinations: Destinations | None = None
    if args.config:
        if config_reader is None:
            print("--config is not available here")
            return 1
        try:
            queues, known_destinations = config_reader(args.config)
        except ValueError as e:
            print(f"{args.config}: {e}")
            return 1
        if known_queues is None and queues:
            known_queues = queues
    known_sounds: set[str] | None = None
    if args.sounds is not None or args.sounds_dir:
        known_sounds = set(_names(args.sounds or ""))
        for directory in args.sounds_dir:
            known_sounds |= sounds_in(directory)
    files, _ = flow_files(args.paths)
    _, diagnostics = load_flow_dir(args.paths, known_queues=known_queues, known_sounds=known_sounds,
                                   known_destinations=known_destinations)
    _print_diagnostics(diagnostics)
    errors = sum(d.is_error for d in diagnostics)
    warnings = len(diagnostics) - errors
    status = "OK" if not errors else "FAILED"
    print(f"{status}: {len(files)} flow file{'s' * (len(files) != 1)}, "
          f"{errors} error{'s' * (errors != 1)}, {warnings} warning{'s' * (warnings != 1)}")
    return 1 if errors else 0


def _parse_time(text: str) -> datetime:
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO time: {text!r} (e.g. 2025-03-04T10:30:00+01:00)") from None
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def _parse_field(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected key=value, got {text!r}")
    return key.strip(), value.strip()


def _parse_digits(text: str) -> tuple[str, ...]:
    entries = tuple(part.strip() for part in text.split(",")) if text.strip() else ()
    bad = sorted({ch for entry in entries for ch in entry if ch not in DTMF_KEYS})
    if bad:
        raise argparse.ArgumentTypeError(f"not DTMF keys: {' '.join(bad)} (use 0-9 * # A-D)")
    return entries


def _parse_outcomes(text: str) -> tuple[str, ...]:
    outcomes = tuple(_names(text))
    bad = [o for o in outcomes if o not in QUEUE_OUTCOMES]
    if bad or not outcomes:
        raise argparse.ArgumentTypeError(f"queue outcomes are {', '.join(QUEUE_OUTCOMES)}; got {text!r}")
    return outcomes


def _parse_transfer_outcomes(text: str) -> tuple[str, ...]:
    outcomes = tuple(_names(text))
    if not outcomes or any(o not in TRANSFER_OUTCOMES for o in outcomes):
        raise argparse.ArgumentTypeError(f"transfer outcomes are {', '.join(TRANSFER_OUTCOMES)}; got {text!r}")
    return outcomes


def simulate_main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="ivr simulate",
        description="Walk a flow without Asterisk and print the path. Other flows of the same "
                    "directory are loaded too (for goto flow:).")
    parser.add_argument("flow", metavar="FLOW", help="the flow file to run")
    parser.add_argument("--caller", default="5550100", help="caller number (default: %(default)s)")
    parser.add_argument("--did", default="", help="dialed number")
    parser.add_argument("--at", type=_parse_time, help="call time, ISO 8601; without offset: UTC (default: now)")
    parser.add_argument("--digits", type=_parse_digits, default=(), metavar="1,2,1234#",
                        help="what the caller types each time the flow waits for input, in order; "
                             "an empty entry (1,,2) lets that wait time out")
    parser.add_argument("--customer", type=_parse_field, action="append", metavar="KEY=VALUE",
                        help="customer data from the CRM (e.g. tier=vip); repeatable. Without it the "
                             "CRM never answers")
    parser.add_argument("--queue-outcome", type=_parse_outcomes, default=("answered",), metavar="OUTCOME[,...]",
                        help=f"queue results in order ({', '.join(QUEUE_OUTCOMES)}; default: answered)")
    parser.add_argument("--transfer-outcome", type=_parse_transfer_outcomes, default=("answered",),
                        metavar="OUTCOME[,...]", help=f"transfer results in order ({', '.join(TRANSFER_OUTCOMES)}; "
                                                      "default: answered)")
    parser.add_argument("--language", help="the channel's language at the start")
    args = parser.parse_args(list(argv))

    path = Path(args.flow)
    if not path.is_file():
        print(f"{path}: no such file")
        return 1
    flowset, diagnostics = load_flow_dir([path.parent])
    if flowset is None:
        _print_diagnostics(diagnostics)
        print(f"FAILED: cannot simulate, the flows in {path.parent} have errors")
        return 1
    flow = next((f for f in flowset.flows.values() if Path(f.file).resolve() == path.resolve()), None)
    if flow is None:
        print(f"{path}: not a flow file of {path.parent}")
        return 1
    at = args.at or datetime.now(UTC)
    call = CallInfo(channel_id="sim", caller=args.caller, did=args.did, language=args.language)
    script = Script(digits=args.digits,
                    customer=None if args.customer is None else dict(args.customer),
                    queue_outcomes=args.queue_outcome, transfer_outcomes=args.transfer_outcome)
    print(f"simulating flow '{flow.name}' ({flow.file}): caller {args.caller or 'unknown'}, "
          f"at {at.isoformat()}")
    print(simulate(flowset, flow.name, call, lambda: at, script).text, end="")
    return 0
