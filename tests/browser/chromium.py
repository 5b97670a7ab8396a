"""Headless Chromium driven over the DevTools protocol, for tests of pages' scripts.

Only what the tests need: open a page at a width, evaluate script in it (awaiting promises),
and take a screenshot. Chromium runs with a throwaway profile that is removed on close.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any, Self

import websockets
from servers import MissingBinary

CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome")
HINT = "install it with `apt-get install chromium`"


def find_chromium() -> str:
    for candidate in (os.environ.get("CHROMIUM", ""), *CANDIDATES):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    raise MissingBinary(f"Chromium is not installed; {HINT}")


class Browser:
    def __init__(self, process: subprocess.Popen[bytes], profile: Path, socket: Any) -> None:
        self.process, self.profile, self.socket = process, profile, socket
        self._next = 0

    @classmethod
    async def start(cls) -> Self:
        profile = Path(tempfile.mkdtemp(prefix="metacrm-chromium-"))
        process = subprocess.Popen(
            [
                find_chromium(),
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--hide-scrollbars",
                f"--user-data-dir={profile}",
                "--remote-debugging-port=0",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not (port_file.exists() and port_file.read_text().strip()):
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                raise RuntimeError("Chromium did not open its DevTools port")
            await asyncio.sleep(0.1)
        port = port_file.read_text().split()[0]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json", timeout=10) as listing:
            page = next(t for t in json.load(listing) if t["type"] == "page")
        socket = await websockets.connect(page["webSocketDebuggerUrl"], max_size=None)
        browser = cls(process, profile, socket)
        await browser.call("Page.enable")
        return browser

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        self._next += 1
        await self.socket.send(json.dumps({"id": self._next, "method": method, "params": params}))
        while True:
            message = json.loads(await self.socket.recv())
            if message.get("id") == self._next:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                result: dict[str, Any] = message.get("result", {})
                return result

    async def open(self, url: str, width: int = 1366, height: int = 900) -> None:
        await self.call(
            "Emulation.setDeviceMetricsOverride",
            width=width,
            height=height,
            deviceScaleFactor=1,
            mobile=width < 600,
        )
        await self.call("Page.navigate", url=url)
        await self.until("document.readyState === 'complete'")

    async def evaluate(self, expression: str) -> Any:
        result = await self.call(
            "Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True
        )
        if "exceptionDetails" in result:
            raise AssertionError(f"script failed: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def until(self, condition: str, timeout: float = 15.0) -> Any:
        """The condition's value once it is truthy (it is evaluated again and again)."""
        deadline = time.monotonic() + timeout
        while True:
            value = await self.evaluate(condition)
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"waited {timeout:.0f} s for {condition}")
            await asyncio.sleep(0.1)

    async def screenshot(self, path: Path) -> None:
        shot = await self.call("Page.captureScreenshot", format="png")
        path.write_bytes(base64.b64decode(shot["data"]))

    async def close(self) -> None:
        await self.socket.close()
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        shutil.rmtree(self.profile, ignore_errors=True)
