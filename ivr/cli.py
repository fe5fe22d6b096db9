"""`ivr` command line: run the server, manage the project's Asterisk, validate and simulate flows."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Callable, Coroutine
from typing import Any

from .config import ConfigError, load_config
from .flow.model import Destinations
from .logsafe import setup_logging

log = logging.getLogger("ivr")


def event_loop_runner(env: dict[str, str] | None = None) -> tuple[str, Callable[[Coroutine[Any, Any, None]], None]]:
    """How ``ivr run`` runs its event loop: uvloop (libuv: ~10-15 % less app CPU per call in
    ``bench/compare.py``) when installed, unless ``IVR_EVENT_LOOP=asyncio`` asks for the standard loop."""
    choice = (env if env is not None else os.environ).get("IVR_EVENT_LOOP", "uvloop").strip().lower()
    if choice != "asyncio":
        try:
            import uvloop
        except ImportError:
            pass
        else:
            return "uvloop", uvloop.run
    return "asyncio", asyncio.run


def _cmd_run(args: argparse.Namespace) -> int:
    from .app import App
    from .asterisk import AsteriskError
    from .malloc_tuning import tune_glibc_malloc

    cfg = load_config(args.config)
    setup_logging(cfg.log.level, cfg.log.file)
    tune_glibc_malloc()  # a long-running process: keep glibc's heap from creeping (ivr/malloc_tuning.py)
    from .app import StartupError
    wall_clock = None
    if args.at:
        try:
            wall_clock = clock_from(args.at)
        except ValueError as e:
            print(f"ivr: --at: {e}", file=sys.stderr)
            return 2
    if not cfg.ari.password:
        print("ivr: no ARI password: set ari.password in the config or IVR_ARI_PASSWORD", file=sys.stderr)
        return 2
    ast = None
    if args.with_asterisk:
        try:
            ast = start_or_reuse_asterisk(cfg)
        except AsteriskError as e:
            print(f"ivr: {e}", file=sys.stderr)
            return 2

    async def main() -> None:
        app = App(cfg, wall_clock=wall_clock) if wall_clock is not None else App(cfg)
        app.install_signal_handlers()
        if args.demo:
            from .demo import run_demo

            async def demo() -> None:
                await app.ready.wait()
                await run_demo(cfg, calls=args.demo_calls)
            demo_task = asyncio.create_task(demo())
        await app.run()
        if args.demo:
            demo_task.cancel()

    loop_name, run = event_loop_runner()
    log.info("event loop: %s", loop_name)
    try:
        run(main())
    except StartupError as e:
        print(f"ivr: {e}", file=sys.stderr)
        return 2
    finally:
        if ast is not None:
            ast.stop()
    return 0


def clock_from(at: str):
    """``--at``: a wall clock that starts at this ISO 8601 instant (with its UTC offset) and runs on, for
    trying business hours, holidays and schedules on real calls. Raises ValueError with what is wrong."""
    import time
    from datetime import datetime, timedelta

    try:
        start = datetime.fromisoformat(at)
    except ValueError:
        raise ValueError(f"{at!r} is not an ISO 8601 date and time (e.g. 2026-12-05T22:00:00+01:00)") from None
    if start.tzinfo is None:
        raise ValueError(f"{at!r} has no UTC offset (e.g. 2026-12-05T22:00:00+01:00)")
    t0 = time.monotonic()
    return lambda: start + timedelta(seconds=time.monotonic() - t0)


def start_or_reuse_asterisk(cfg):
    """``ivr run --with-asterisk``: start the instance's Asterisk, or reuse the one already running (after
    the app died, re-running the command must not start a second Asterisk over the live one). Returns the
    instance this command started (to stop on exit), or None when it reused a running one, which then
    keeps running when this command stops. Raises AsteriskError with what to do."""
    from .asterisk import AsteriskError, AsteriskInstance

    inst = AsteriskInstance(cfg)
    pid = inst.running_pid()
    if pid is None:
        inst.start()
        log.info("asterisk started (SIP %s:%d, ARI %s)", cfg.asterisk.bind_address, cfg.asterisk.sip_port,
                 cfg.ari_url)
        return inst
    try:
        inst.wait_ready(5.0)
    except AsteriskError:
        raise AsteriskError(
            f"an Asterisk of instance {cfg.asterisk.instance!r} is already running (pid {pid}) but its ARI "
            f"does not answer at {cfg.ari_url} with this config's credentials: stop it (kill {pid}) or set "
            "another asterisk.instance") from None
    log.warning("reusing the Asterisk already running for instance %r (pid %d); it keeps running when this "
                "command stops", cfg.asterisk.instance, pid)
    return None


def _cmd_asterisk(args: argparse.Namespace) -> int:
    from .asterisk import AsteriskError, AsteriskInstance, render_configs

    cfg = load_config(args.config)
    inst = AsteriskInstance(cfg)
    try:
        if args.action == "render":
            for name, text in render_configs(cfg, inst.astdir).items():
                print(f";; ---- {name}\n{text}")
        elif args.action == "check":
            print(inst.check_installed())
        elif args.action == "cli":
            print(inst.cli(" ".join(args.rest)), end="")
    except AsteriskError as e:
        print(f"ivr: {e}", file=sys.stderr)
        return 2
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="ivr", description="IVR and skill-based ACD server on Asterisk ARI")
    sub = p.add_subparsers(dest="cmd", required=True)

    r = sub.add_parser("run", help="run the ARI application")
    r.add_argument("--config", "-c", default="config/ivr.yaml")
    r.add_argument("--with-asterisk", action="store_true",
                   help="also start the project's Asterisk (chroot from scripts/install.sh) and stop it on exit")
    r.add_argument("--demo", action="store_true",
                   help="also start simulated agent softphones and a bounded trickle of simulated callers")
    r.add_argument("--demo-calls", type=int, default=40, help="how many simulated calls (default 40)")
    r.add_argument("--at", metavar="ISO8601",
                   help="run the flows' wall clock from this instant, e.g. 2026-12-05T22:00:00+01:00 to try the "
                        "support line out of hours (business hours, holidays and schedules follow it)")
    r.set_defaults(func=_cmd_run)

    a = sub.add_parser("asterisk", help="the project's Asterisk: render configs, check the install, run a CLI command")
    a.add_argument("action", choices=["render", "check", "cli"])
    a.add_argument("rest", nargs="*")
    a.add_argument("--config", "-c", default="config/ivr.yaml")
    a.set_defaults(func=_cmd_asterisk)

    v = sub.add_parser("validate", help="validate flow files", add_help=False)
    v.set_defaults(func=None, passthrough="validate")
    s = sub.add_parser("simulate", help="walk a flow without Asterisk", add_help=False)
    s.set_defaults(func=None, passthrough="simulate")

    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in ("validate", "simulate"):
        from .flow import cli as flow_cli
        rest = list(argv[1:])
        if argv[0] == "validate" and "--queues" not in rest and "-h" not in rest and "--help" not in rest:
            # the queues the server knows (config/ivr.yaml, or IVR_CONFIG) make unknown queues an error
            import os
            cfg_path = os.environ.get("IVR_CONFIG", "config/ivr.yaml")
            if os.path.exists(cfg_path):
                try:
                    names = [str(q.get("name")) for q in load_config(cfg_path).queues]
                except ConfigError as e:
                    print(f"ivr: config error: {e}", file=sys.stderr)
                    return 2
                if names:
                    rest += ["--queues", ",".join(names)]
                if "--config" not in rest:      # and its extensions / trunks check the transfer nodes
                    rest += ["--config", cfg_path]
        if argv[0] == "validate":
            return flow_cli.validate_main(rest, _flow_config_reader)
        return flow_cli.simulate_main(rest)
    args = p.parse_args(argv)
    try:
        return args.func(args)
    except ConfigError as e:
        print(f"ivr: config error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())


def _flow_config_reader(path: str) -> tuple[set[str], Destinations]:
    """``ivr validate --config``: the server config's queue names and transfer destinations."""
    try:
        cfg = load_config(path)
    except ConfigError as e:
        raise ValueError(str(e)) from None
    internal, trunks = cfg.transfer_destinations()
    return {str(q.get("name")) for q in cfg.queues}, Destinations(internal, trunks)
