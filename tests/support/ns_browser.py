"""Debian's headless Chromium inside a test's network namespace (tests/support/netns.py), driven over the
DevTools protocol on a pipe (``--remote-debugging-pipe``: fd 3 in, fd 4 out, NUL-separated JSON), since a
debugging port inside the namespace is out of the host's reach. Same methods as `Browser` (goto, eval, text,
wait_text, screenshot), plus the flags a WebRTC page needs: a fake microphone playing a WAV file, media
permission granted, and the app's origin (the host end of the veth pair, not localhost) treated as secure.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import tempfile

from tests.support.browser import FLAGS, Browser
from tests.support.netns import NetNs


class NsBrowser(Browser):
    def __init__(self, ns: NetNs, *, secure_origin: str, fake_audio: str | None = None) -> None:
        self.exe = shutil.which("chromium") or shutil.which("chromium-browser")
        if self.exe is None:
            raise RuntimeError("chromium is not installed: run scripts/install.sh")
        self.ns = ns
        self.profile = tempfile.mkdtemp(prefix="chromium-ns-")
        self._n = 0
        self.flags = [*FLAGS, "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                      "--autoplay-policy=no-user-gesture-required",
                      f"--unsafely-treat-insecure-origin-as-secure={secure_origin}"]
        if fake_audio:
            self.flags.append(f"--use-file-for-fake-audio-capture={fake_audio}")
        self.session_id: str | None = None
        self.console: list[str] = []

    async def __aenter__(self) -> NsBrowser:
        to_chrome_r, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_w = os.pipe()
        cmd = " ".join([self.exe, *self.flags, "--remote-debugging-pipe", f"--user-data-dir={self.profile}",
                        "about:blank"])
        self.proc = await asyncio.create_subprocess_exec(
            *self.ns.exec_prefix(), "bash", "-c", f"exec {cmd} 3<&{to_chrome_r} 4>&{from_chrome_w}",
            pass_fds=(to_chrome_r, from_chrome_w), stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL, stderr=open(os.path.join(self.profile, "stderr.log"), "wb"),
            start_new_session=True)
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        loop = asyncio.get_running_loop()
        self._reader = asyncio.StreamReader(limit=64 * 1024 * 1024)
        self._transport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(self._reader), os.fdopen(self._from_chrome, "rb", 0))
        targets = await self.cdp("Target.getTargets")
        page = next(t for t in targets["targetInfos"] if t["type"] == "page")
        self.session_id = (await self.cdp("Target.attachToTarget", targetId=page["targetId"],
                                          flatten=True))["sessionId"]
        await self.cdp("Runtime.enable")
        return self

    async def __aexit__(self, *exc) -> None:
        try:
            self.proc.kill()
        except ProcessLookupError:
            pass
        await self.proc.wait()
        self._transport.close()
        os.close(self._to_chrome)
        shutil.rmtree(self.profile, ignore_errors=True)

    async def cdp(self, method: str, **params):
        self._n += 1
        my = self._n
        msg = {"id": my, "method": method, "params": params}
        if self.session_id is not None and not method.startswith("Target."):
            msg["sessionId"] = self.session_id
        os.write(self._to_chrome, json.dumps(msg).encode() + b"\0")
        while True:
            raw = await asyncio.wait_for(self._reader.readuntil(b"\0"), 15)
            m = json.loads(raw[:-1])
            if m.get("method") == "Runtime.consoleAPICalled":
                args = m["params"].get("args", [])
                self.console.append(" ".join(str(a.get("value", a.get("description", ""))) for a in args))
            if m.get("id") == my:
                if "error" in m:
                    raise RuntimeError(f"{method}: {m['error']}")
                return m.get("result", {})

    async def eval(self, expr: str, await_promise: bool = False):
        r = await self.cdp("Runtime.evaluate", expression=expr, returnByValue=True,
                           awaitPromise=await_promise)
        return r.get("result", {}).get("value")
