"""Open a local page in headless Chromium and report what it fetched, its images and a screenshot.

Drives Chromium over the DevTools protocol on a pipe (`--remote-debugging-pipe`: fd 3 in, fd 4 out, messages
ending in NUL), so no WebSocket library is needed. Used by the tests of self-contained pages (report.html).
"""

from __future__ import annotations

import base64
import json
import os
import select
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

IMAGES_JS = ("JSON.stringify(Array.from(document.images).map(i => ({src: i.src.slice(0, 40), "
             "complete: i.complete, width: i.naturalWidth})))")


@dataclass
class PageVisit:
    """What happened when the page loaded."""

    requested: list[str] = field(default_factory=list)  # every URL the page asked for, the page itself first
    failed: list[str] = field(default_factory=list)  # 'url: error' per request that failed
    images: list[dict[str, Any]] = field(default_factory=list)  # per <img>: src (start), complete, naturalWidth
    screenshot: bytes = b""  # PNG of the first screen
    value: Any = None  # what `read` evaluated to, once `until` held


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


class _Pipe:
    """The browser's DevTools pipe: send a command, wait for its answer, keep the events seen meanwhile."""

    def __init__(self, to_browser: int, from_browser: int) -> None:
        self.to_browser, self.from_browser = to_browser, from_browser
        self.buffer, self.events, self.next_id = b"", [], 0

    def call(self, method: str, session: str | None = None, timeout: float = 60, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        message: dict[str, Any] = {"id": self.next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        os.write(self.to_browser, json.dumps(message).encode() + b"\0")
        while True:
            reply = self.read(timeout)
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})

    def wait_for(self, method: str, timeout: float = 60) -> dict[str, Any]:
        for event in self.events:
            if event.get("method") == method:
                return event
        while True:
            event = self.read(timeout)
            if event.get("method") == method:
                return event

    def read(self, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while b"\0" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.from_browser], [], [], left)[0]:
                raise TimeoutError(f"no answer from chromium within {timeout} s")
            chunk = os.read(self.from_browser, 1 << 20)
            if not chunk:
                raise RuntimeError("chromium closed its DevTools pipe")
            self.buffer += chunk
        raw, self.buffer = self.buffer.split(b"\0", 1)
        message = json.loads(raw)
        if "method" in message:
            self.events.append(message)
        return message


def visit(url: str, profile: Path, chromium: str, width: int = 1200, height: int = 900, until: str | None = None,
          read: str | None = None, wait_s: float = 120) -> PageVisit:
    """Load `url` in a fresh headless Chromium (profile folder `profile`) and record the visit.

    `until` (a JS expression) is polled after the load until it is true (at most `wait_s` seconds, else
    TimeoutError), then `read` (a JS expression giving JSON-able data) is evaluated into `PageVisit.value`.
    """
    commands_read, commands_write = os.pipe()
    answers_read, answers_write = os.pipe()

    def child_fds() -> None:  # the protocol's fixed descriptors: 3 reads commands, 4 writes answers
        high_in, high_out = os.dup(commands_read), os.dup(answers_write)  # neither is 3 or 4 once both are held
        os.dup2(high_in, 3)  # inheritable, and close_fds=False keeps them
        os.dup2(high_out, 4)

    browser = subprocess.Popen(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--remote-debugging-pipe",
         f"--user-data-dir={profile}", f"--window-size={width},{height}", "about:blank"],
        preexec_fn=child_fds, close_fds=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(commands_read)
    os.close(answers_write)
    pipe = _Pipe(commands_write, answers_read)
    try:
        target = pipe.call("Target.createTarget", url="about:blank")["targetId"]
        session = pipe.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        pipe.call("Network.enable", session)
        pipe.call("Page.enable", session)
        pipe.call("Page.navigate", session, url=url)
        pipe.wait_for("Page.loadEventFired")
        value = _wait_and_read(pipe, session, until, read, wait_s)
        images = json.loads(pipe.call("Runtime.evaluate", session, expression=IMAGES_JS,
                                      returnByValue=True)["result"]["value"])
        shot = base64.b64decode(pipe.call("Page.captureScreenshot", session, format="png")["data"])
        pipe.call("Browser.close")
    finally:
        try:
            browser.wait(timeout=10)
        except subprocess.TimeoutExpired:
            browser.kill()
            browser.wait(timeout=30)
        os.close(commands_write)
        os.close(answers_read)
    urls = {}
    for event in pipe.events:
        params = event.get("params", {})
        if event.get("method") == "Network.requestWillBeSent":
            urls[params["requestId"]] = params["request"]["url"]
    failed = [f"{urls.get(e['params']['requestId'], '?')[:80]}: {e['params'].get('errorText')}"
              for e in pipe.events if e.get("method") == "Network.loadingFailed"]
    return PageVisit(requested=list(urls.values()), failed=failed, images=images, screenshot=shot, value=value)


def _wait_and_read(pipe: _Pipe, session: str, until: str | None, read: str | None, wait_s: float) -> Any:
    """Poll `until` every 0.2 s (up to `wait_s`), then the value of `read` (None when not asked)."""
    deadline = time.monotonic() + wait_s
    while until is not None:
        answer = pipe.call("Runtime.evaluate", session, expression=f"Boolean({until})", returnByValue=True)
        if answer["result"].get("value"):
            break
        if time.monotonic() > deadline:
            raise TimeoutError(f"the page did not reach `{until}` within {wait_s} s")
        time.sleep(0.2)
    if read is None:
        return None
    text = pipe.call("Runtime.evaluate", session, expression=f"JSON.stringify({read})", returnByValue=True)["result"]
    return json.loads(text["value"]) if "value" in text else None

