"""A headless Chromium driven over the DevTools protocol, for the browser tests.

Debian's ``chromium`` (``.ci/ensure-chromium``) runs headless with a fresh
profile; this client talks to it over one websocket (aiohttp's client), no
browser library needed. A :class:`Page` is a tab with its own viewport (a
phone's or a desktop's, with the phone's ``mobile`` emulation, so the page's
viewport meta is honoured as on a phone); it loads a URL, evaluates JavaScript
in the page and returns the value, waits for a condition, and saves a
full-page screenshot. Script errors, failed requests and console errors
(Content-Security-Policy violations among them) are collected in
:attr:`Page.problems`.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
import re
import shutil
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, BinaryIO

import aiohttp

LISTENING = re.compile(r"DevTools listening on (ws://\S+)")


class BrowserError(RuntimeError):
    pass


def chromium_path() -> str | None:
    """The Chromium to run: ``$CHROMIUM``, else ``chromium`` on PATH."""
    return os.environ.get("CHROMIUM") or shutil.which("chromium")


class Browser:
    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._ws = ws
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._pages: dict[str, Page] = {}
        self._reader = asyncio.create_task(self._read(), name="cdp-reader")

    @classmethod
    @contextlib.asynccontextmanager
    async def launch(cls, workdir: Path) -> AsyncIterator[Browser]:
        """Start headless Chromium with a profile under ``workdir``; its log goes there too."""
        exe = chromium_path()
        if exe is None:
            raise BrowserError("chromium is not installed (bash .ci/ensure-chromium)")
        log = _open_log(workdir)
        proc = await asyncio.create_subprocess_exec(
            exe,
            "--headless=new",
            "--no-sandbox",  # tests run as root in CI containers
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-extensions",
            "--hide-scrollbars",  # scrollbars would take width from the page at 390 px
            "--remote-debugging-port=0",
            f"--user-data-dir={workdir / 'profile'}",
            "about:blank",
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        assert proc.stderr is not None
        drain: asyncio.Task[None] | None = None
        try:
            url = await asyncio.wait_for(_devtools_url(proc.stderr, log), 30)
            drain = asyncio.create_task(_copy(proc.stderr, log))
            async with (
                aiohttp.ClientSession() as http,
                http.ws_connect(url, max_msg_size=0) as ws,
            ):
                browser = cls(ws)
                try:
                    yield browser
                finally:
                    browser._reader.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await browser._reader
        finally:
            if drain is not None:
                drain.cancel()
            if proc.returncode is None:
                proc.terminate()
                try:
                    await asyncio.wait_for(proc.wait(), 10)
                except TimeoutError:
                    proc.kill()
                    await proc.wait()
            log.close()

    async def send(
        self, method: str, params: dict[str, Any] | None = None, session: str | None = None
    ) -> dict[str, Any]:
        call_id = next(self._ids)
        message: dict[str, Any] = {"id": call_id, "method": method, "params": params or {}}
        if session is not None:
            message["sessionId"] = session
        answer = asyncio.get_running_loop().create_future()
        self._pending[call_id] = answer
        await self._ws.send_str(json.dumps(message))
        return await asyncio.wait_for(answer, 30)

    async def new_page(self, width: int, height: int, *, mobile: bool) -> Page:
        """A tab ``width`` by ``height`` CSS pixels; ``mobile``: a phone's viewport rules."""
        target = await self.send("Target.createTarget", {"url": "about:blank"})
        attached = await self.send(
            "Target.attachToTarget", {"targetId": target["targetId"], "flatten": True}
        )
        page = Page(self, attached["sessionId"], target["targetId"])
        self._pages[page.session] = page
        for domain in ("Page.enable", "Runtime.enable", "Log.enable", "Network.enable"):
            await page.send(domain)
        await page.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 2, "mobile": mobile},
        )
        if mobile:
            await page.send("Emulation.setTouchEmulationEnabled", {"enabled": True})
        return page

    async def _read(self) -> None:
        async for raw in self._ws:
            if raw.type != aiohttp.WSMsgType.TEXT:
                continue
            message = json.loads(raw.data)
            if "id" in message:
                answer = self._pending.pop(message["id"], None)
                if answer is None or answer.done():
                    continue
                if "error" in message:
                    answer.set_exception(BrowserError(f"{message['error']}"))
                else:
                    answer.set_result(message.get("result", {}))
            elif (page := self._pages.get(message.get("sessionId", ""))) is not None:
                page.on_event(message["method"], message.get("params", {}))


class Page:
    def __init__(self, browser: Browser, session: str, target: str) -> None:
        self.browser = browser
        self.session = session
        self.target = target
        self.problems: list[str] = []
        self._loaded = asyncio.Event()

    async def send(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        return await self.browser.send(method, params, self.session)

    def on_event(self, method: str, params: dict[str, Any]) -> None:
        if method == "Page.loadEventFired":
            self._loaded.set()
        elif method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            self.problems.append(
                f"script error: {details.get('exception', {}).get('description') or details}"
            )
        elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
            self.problems.append(f"{params['entry']['source']}: {params['entry']['text']}")
        elif method == "Runtime.consoleAPICalled" and params["type"] == "error":
            self.problems.append(f"console.error: {params['args']}")
        elif method == "Network.loadingFailed" and not params.get("canceled"):
            self.problems.append(f"request failed: {params.get('errorText')}")

    async def goto(self, url: str) -> None:
        """Load ``url`` and wait for its load event."""
        self._loaded.clear()
        navigated = await self.send("Page.navigate", {"url": url})
        if navigated.get("errorText"):
            raise BrowserError(f"{url}: {navigated['errorText']}")
        await asyncio.wait_for(self._loaded.wait(), 30)

    async def evaluate(self, expression: str) -> Any:
        """The value of ``expression`` in the page (awaited if a promise), as JSON."""
        answer = await self.send(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": True},
        )
        if "exceptionDetails" in answer:
            raise BrowserError(f"{expression[:80]}…: {answer['exceptionDetails']}")
        return answer["result"].get("value")

    async def wait_for(self, expression: str, timeout_s: float = 15) -> Any:
        """Poll ``expression`` until it is truthy; its value."""
        deadline = time.monotonic() + timeout_s
        last = None
        while time.monotonic() < deadline:
            last = await self.evaluate(expression)
            if last:
                return last
            await asyncio.sleep(0.1)
        raise AssertionError(f"timed out after {timeout_s} s waiting for {expression}; last {last}")

    async def screenshot(self, path: Path) -> Path:
        """A PNG of the whole page, as far down as it goes, at the page's width."""
        metrics = await self.send("Page.getLayoutMetrics")
        size = metrics["cssContentSize"]
        view = metrics["cssLayoutViewport"]
        shot = await self.send(
            "Page.captureScreenshot",
            {
                "format": "png",
                "captureBeyondViewport": True,
                "clip": {
                    "x": 0,
                    "y": 0,
                    "width": view["clientWidth"],
                    "height": max(size["height"], view["clientHeight"]),
                    "scale": 1,
                },
            },
        )
        _write(path, base64.b64decode(shot["data"]))
        return path

    async def close(self) -> None:
        with contextlib.suppress(BrowserError):
            await self.browser.send("Target.closeTarget", {"targetId": self.target})


def _open_log(workdir: Path) -> BinaryIO:
    workdir.mkdir(parents=True, exist_ok=True)
    return (workdir / "chromium.log").open("wb")


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


async def _devtools_url(stderr: asyncio.StreamReader, log: BinaryIO) -> str:
    while line := await stderr.readline():
        log.write(line)
        if found := LISTENING.search(line.decode(errors="replace")):
            return found.group(1)
    raise BrowserError("chromium exited before it listened for DevTools")


async def _copy(stderr: asyncio.StreamReader, log: BinaryIO) -> None:
    while line := await stderr.readline():
        log.write(line)
