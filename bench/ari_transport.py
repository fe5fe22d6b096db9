"""ARI REST over HTTP vs over a websocket: CPU per request in Asterisk and in the client.

Starts the project's Asterisk (the chroot of scripts/install.sh, as root) on free loopback ports and sends
the same requests both ways, one at a time, alternating the transports:

* ``GET /bridges/{id}`` and ``POST /channels/{missing}/answer`` (404): a request's fixed cost;
* ``POST /bridges/{id}`` + ``DELETE /bridges/{id}``: what a conversation's bridge costs.

For each it prints Asterisk's CPU (from /proc) and this process's CPU per request, and the wall time.
The client is aiohttp as the app uses it (`ivr.ari.AriClient` over HTTP, `ivr.ari.rest_socket` messages).

    .venv/bin/python bench/ari_transport.py [--requests 3000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp  # noqa: E402

from ivr.ari.client import basic_auth_header  # noqa: E402
from ivr.asterisk import AsteriskInstance  # noqa: E402
from tests.support.stack import make_test_config  # noqa: E402


def _cpu(pid: int) -> float:
    f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def _own() -> float:
    t = os.times()
    return t.user + t.system


async def _run(base: str, auth: str, pid: int, n: int) -> None:
    async with aiohttp.ClientSession(headers={"Authorization": auth}) as s:
        async with s.post(f"{base}/ari/bridges/bench-b", params={"type": "mixing"}) as r:
            await r.read()
        ws = await s.ws_connect(base.replace("http", "ws", 1) + "/ari/events?app=bench-rest&subscribeAll=false")
        seq = 0

        async def over_ws(method: str, uri: str, query: dict[str, str]) -> None:
            nonlocal seq
            seq += 1
            msg = {"type": "RESTRequest", "request_id": str(seq), "method": method, "uri": uri}
            if query:
                msg["query_strings"] = [{"name": k, "value": v} for k, v in query.items()]
            await ws.send_str(json.dumps(msg))
            while True:
                m = await ws.receive()
                if json.loads(m.data).get("type") == "RESTResponse":
                    return

        async def over_http(method: str, uri: str, query: dict[str, str]) -> None:
            async with s.request(method, f"{base}/ari/{uri}", params=query) as r:
                await r.read()

        cases = [
            ("GET bridge", lambda i: [("GET", "bridges/bench-b", {})]),
            ("POST answer (404)", lambda i: [("POST", "channels/nope/answer", {})]),
            ("bridge create+destroy", lambda i: [("POST", f"bridges/x{i}", {"type": "mixing,dtmf_events"}),
                                                 ("DELETE", f"bridges/x{i}", {})]),
        ]
        print(f"{'request':24} {'transport':9} {'asterisk ms':>11} {'client ms':>9} {'wall ms':>8}   (per request"
              " or pair, median of 3 alternating runs)")
        for name, steps in cases:
            res: dict[str, list[tuple[float, float, float]]] = {"http": [], "websocket": []}
            for mode in ("http", "websocket") * 3:
                send = over_http if mode == "http" else over_ws
                c0, o0, t0 = _cpu(pid), _own(), time.perf_counter()
                for i in range(n):
                    for method, uri, query in steps(i):
                        await send(method, uri, query)
                res[mode].append((1e3 * (_cpu(pid) - c0) / n, 1e3 * (_own() - o0) / n,
                                  1e3 * (time.perf_counter() - t0) / n))
            for mode, runs in res.items():
                med = [sorted(x[k] for x in runs)[1] for k in range(3)]
                print(f"{name:24} {mode:9} {med[0]:11.3f} {med[1]:9.3f} {med[2]:8.3f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--requests", type=int, default=3000)
    a = p.parse_args()
    cfg = make_test_config()
    inst = AsteriskInstance(cfg)
    inst.start()
    try:
        pid = inst.running_pid()
        assert pid is not None
        asyncio.run(_run(cfg.ari_url.rstrip("/"), basic_auth_header(cfg.ari.user, cfg.ari.password), pid,
                         a.requests))
    finally:
        inst.remove()


if __name__ == "__main__":
    main()
