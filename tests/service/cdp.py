"""A small Chrome DevTools Protocol driver for the browser tests: Debian's headless Chromium on loopback,
started with the flags of a closed network and a fresh user-data dir, bounded in time and always killed.

The protocol is JSON over one websocket (the `websockets` sync client): commands carry an id and get one
answer with that id; events arrive in between and are kept. Pages are targets in their own browser
context (fresh storage each), driven through flattened sessions.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from websockets.sync.client import ClientConnection, connect

# issue 9: a closed network: no background requests, no updates, no sync, no first-run
CLOSED_NETWORK_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                        "--disable-background-networking", "--disable-component-update", "--disable-sync")
START_LIMIT_S = 60  # until Chromium writes its DevTools port
LIFETIME_S = 1800  # a browser (one per test module) still running after this is killed, whatever happens
CALL_LIMIT_S = 60  # one protocol command


class BrowserError(RuntimeError):
    """Chromium did not start, a command failed, or a page script threw."""


def chromium_path() -> str | None:
    """Debian's `chromium` (or `chromium-browser`) on PATH; DJEPA_CHROMIUM names another."""
    return os.environ.get("DJEPA_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


class Browser:
    """One Chromium process and its DevTools connection; `close()` (or the context manager) kills it."""

    def __init__(self, executable: str, workdir: Path) -> None:
        self.workdir = workdir
        profile = workdir / "profile"
        profile.mkdir(parents=True)
        self.log_path = workdir / "chromium.log"
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [executable, *CLOSED_NETWORK_FLAGS, f"--user-data-dir={profile}", "--remote-debugging-port=0",
             "about:blank"], stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT)
        self._watchdog = threading.Timer(LIFETIME_S, self.proc.kill)
        self._watchdog.daemon = True
        self._watchdog.start()
        self._next_id = 0
        self.events: list[dict[str, Any]] = []
        try:
            self.ws = self._connect(profile / "DevToolsActivePort")
        except BaseException:
            self.close()
            raise

    def _connect(self, port_file: Path) -> ClientConnection:
        deadline = time.monotonic() + START_LIMIT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BrowserError(f"chromium exited with {self.proc.returncode}; see {self.log_path}")
            lines = port_file.read_text().splitlines() if port_file.exists() else []
            if len(lines) >= 2:  # "<port>\n/devtools/browser/<id>"
                ws = connect(f"ws://127.0.0.1:{lines[0]}{lines[1]}", max_size=None, proxy=None,
                             open_timeout=CALL_LIMIT_S)
                return ws.__enter__()  # entered as a context (websockets 17.1 warns otherwise); close() leaves it
            time.sleep(0.1)
        raise BrowserError(f"chromium wrote no DevTools port in {START_LIMIT_S} s; see {self.log_path}")

    def call(self, method: str, params: dict[str, Any] | None = None, session: str | None = None,
             timeout_s: float = CALL_LIMIT_S) -> dict[str, Any]:
        """Send one command and wait for its answer (events met on the way are kept in `events`)."""
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session is not None:
            message["sessionId"] = session
        self.ws.send(json.dumps(message))
        deadline = time.monotonic() + timeout_s
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BrowserError(f"{method}: no answer in {timeout_s} s")
            answer = json.loads(self.ws.recv(timeout=left))
            if answer.get("id") != self._next_id:
                self.events.append(answer)
                continue
            if "error" in answer:
                raise BrowserError(f"{method}: {answer['error']}")
            result: dict[str, Any] = answer.get("result", {})
            return result

    def new_page(self, width: int = 1100, height: int = 900) -> Page:
        """A tab in a fresh browser context (its own storage), at about:blank."""
        context = self.call("Target.createBrowserContext")["browserContextId"]
        target = self.call("Target.createTarget", {"url": "about:blank", "browserContextId": context})["targetId"]
        session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        page = Page(self, session)
        page.call("Page.enable")
        page.call("Runtime.enable")
        page.call("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})
        return page

    def close(self) -> None:
        self._watchdog.cancel()
        ws = getattr(self, "ws", None)
        if ws is not None:
            ws.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._log.close()

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Page:
    """One tab: navigate, evaluate script (promises awaited), wait for a condition, take a screenshot."""

    def __init__(self, browser: Browser, session: str) -> None:
        self.browser, self.session = browser, session

    def call(self, method: str, params: dict[str, Any] | None = None,
             timeout_s: float = CALL_LIMIT_S) -> dict[str, Any]:
        return self.browser.call(method, params, session=self.session, timeout_s=timeout_s)

    def goto(self, url: str, timeout_s: float = CALL_LIMIT_S) -> None:
        """Load `url` and wait until its document (scripts included) has loaded."""
        answer = self.call("Page.navigate", {"url": url})
        if answer.get("errorText"):
            raise BrowserError(f"navigating to {url}: {answer['errorText']}")
        self.wait_for("document.readyState === 'complete' && location.href !== 'about:blank'", timeout_s)

    def evaluate(self, expression: str, timeout_s: float = CALL_LIMIT_S) -> Any:
        """The value of a script expression in the page (a promise is awaited); a throw is a BrowserError."""
        answer = self.call("Runtime.evaluate", {"expression": expression, "awaitPromise": True,
                                                "returnByValue": True, "userGesture": True}, timeout_s=timeout_s + 5)
        if "exceptionDetails" in answer:
            details = answer["exceptionDetails"]
            raise BrowserError(details.get("exception", {}).get("description") or details.get("text"))
        return answer.get("result", {}).get("value")

    def wait_for(self, condition: str, timeout_s: float = CALL_LIMIT_S) -> Any:
        """Poll the script expression `condition` in the page until it is truthy; its value, or a BrowserError."""
        script = f"""new Promise((resolve, reject) => {{
            const end = performance.now() + {timeout_s * 1000};
            const poll = () => {{
                let v;
                try {{ v = ({condition}); }} catch (e) {{ v = undefined; }}
                if (v) resolve(v);
                else if (performance.now() > end) reject(new Error({json.dumps("timed out waiting for " + condition)}));
                else setTimeout(poll, 50);
            }};
            poll();
        }})"""
        return self.evaluate(script, timeout_s)

    def screenshot(self, path: Path) -> Path:
        """A PNG of the whole page at `path`."""
        data = self.call("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})["data"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))
        return path

    def uncaught_errors(self) -> list[str]:
        """Script exceptions the page did not catch, so far."""
        return [str(e["params"]["exceptionDetails"].get("exception", {}).get("description")
                    or e["params"]["exceptionDetails"].get("text"))
                for e in self.browser.events
                if e.get("sessionId") == self.session and e.get("method") == "Runtime.exceptionThrown"]
