"""A real headless Chromium (Debian's package) driven over the DevTools protocol with aiohttp: no browser
download, no extra dependency. Enough for page tests: navigate, evaluate JS, wait for text, screenshot."""

from __future__ import annotations

import asyncio
import base64
import shutil
import tempfile
import time
from pathlib import Path

import aiohttp

from ivr.sim.ports import free_tcp_port

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--window-size=1280,900"]


class Browser:
    def __init__(self) -> None:
        self.exe = shutil.which("chromium") or shutil.which("chromium-browser")
        if self.exe is None:
            raise RuntimeError("chromium is not installed: run scripts/install.sh")
        self.port = free_tcp_port()
        self.profile = tempfile.mkdtemp(prefix="chromium-")
        self._n = 0

    async def __aenter__(self) -> Browser:
        self.proc = await asyncio.create_subprocess_exec(
            self.exe, *FLAGS, f"--remote-debugging-port={self.port}", "--remote-debugging-address=127.0.0.1",
            f"--user-data-dir={self.profile}", "about:blank",
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
        self.http = aiohttp.ClientSession()
        tabs = None
        for _ in range(100):
            try:
                async with self.http.get(f"http://127.0.0.1:{self.port}/json") as r:
                    tabs = await r.json()
                if any(t["type"] == "page" for t in tabs):
                    break
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
        tab = next(t for t in tabs or [] if t["type"] == "page")
        self.ws = await self.http.ws_connect(tab["webSocketDebuggerUrl"], max_msg_size=0)
        return self

    async def __aexit__(self, *exc) -> None:
        await self.ws.close()
        await self.http.close()
        self.proc.kill()
        await self.proc.wait()
        shutil.rmtree(self.profile, ignore_errors=True)

    async def cdp(self, method: str, **params):
        self._n += 1
        my = self._n
        await self.ws.send_json({"id": my, "method": method, "params": params})
        while True:
            m = await asyncio.wait_for(self.ws.receive_json(), 15)
            if m.get("id") == my:
                if "error" in m:
                    raise RuntimeError(f"{method}: {m['error']}")
                return m.get("result", {})

    async def goto(self, url: str) -> None:
        await self.cdp("Page.enable")
        await self.cdp("Page.navigate", url=url)

    async def eval(self, expr: str):
        r = await self.cdp("Runtime.evaluate", expression=expr, returnByValue=True)
        return r.get("result", {}).get("value")

    async def text(self, element_id: str) -> str:
        return await self.eval(f"(document.getElementById({element_id!r}) || {{}}).textContent || ''") or ""

    async def wait_text(self, element_id: str, pred, timeout: float = 10.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            t = await self.text(element_id)
            if pred(t):
                return t
            if time.monotonic() > deadline:
                raise AssertionError(f"#{element_id} never matched; last text {t!r}")
            await asyncio.sleep(0.1)

    async def screenshot(self, path: Path) -> Path:
        r = await self.cdp("Page.captureScreenshot", format="png")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(r["data"]))
        return path
