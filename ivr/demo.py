"""Demo mode (`ivr run --with-asterisk --demo`): a few simulated agent softphones (pyVoIP, registering like
real phones) and a bounded trickle of simulated callers (sipp, pressing menu keys), all real SIP on
loopback, so queues, agents, the wallboard and the metrics move within a minute of starting."""

from __future__ import annotations

import asyncio
import logging
import random

from .config import Config

log = logging.getLogger(__name__)


async def run_demo(cfg: Config, *, agents: int = 3, calls: int = 40, interval: float = 5.0,
                   max_concurrent: int = 6, did: str = "900") -> None:
    try:
        from .sim.sipp import SippCaller, SippProcess
        from .sim.softphone import AgentPhone
    except ImportError as e:      # pyVoIP is in the [test] / [demo] extras
        log.error("demo mode needs the demo extras (pip install -e .[demo]): %s", e)
        return
    rng = random.Random(7)
    phones = []
    for a in cfg.agent_sip()[:agents]:
        try:
            phones.append(await asyncio.to_thread(
                lambda a=a: AgentPhone(a.endpoint.split("/", 1)[1], a.sip_password, cfg.asterisk.sip_port).start()))
            log.info("demo: agent softphone %s registered", a.id)
        except Exception as e:   # a demo agent that cannot register must not stop the server
            log.warning("demo: agent %s could not register: %s", a.id, e)
    running: set[asyncio.Task] = set()
    try:
        for n in range(calls):
            while len(running) >= max_concurrent:
                await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
            key = rng.choice("1123")
            talk = rng.randint(4000, 15000)
            caller = SippCaller(did, steps=[("pause", 2500), ("dtmf", key), ("pause", talk)],
                                caller_number=f"+44207946{rng.choice(['0001', '0002', '0003', '0005', '0999'])}")
            proc = SippProcess(caller, cfg.asterisk.sip_port, timeout=120)
            t = asyncio.create_task(asyncio.to_thread(proc.wait))
            running.add(t)
            t.add_done_callback(running.discard)
            log.info("demo: caller %d/%d dials %s and will press %s", n + 1, calls, did, key)
            await asyncio.sleep(interval * rng.uniform(0.5, 1.5))
        if running:
            await asyncio.wait(running)
        log.info("demo: all %d simulated calls done", calls)
    finally:
        for p in phones:
            await asyncio.to_thread(p.stop)
