"""Browser tests of the web console (console/) against `aivideo serve` on loopback.

Chromium is Debian's (/usr/bin/chromium): Playwright cannot download its own browsers here.
Everything listens on 127.0.0.1 and every request the browser makes is checked to stay there.
Run through scripts/browser-test, which installs what is needed and builds the binary.
"""

from __future__ import annotations

import functools
import http.server
import os
import re
import secrets
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

ROOT = Path(__file__).resolve().parents[2]
CONSOLE_DIR = ROOT / "console"
# Where the screenshots go: docs/screenshots/ (embedded in the README), or elsewhere when
# AIVIDEO_SCREENSHOT_DIR says so (e.g. a temporary folder in CI, so that a run changes no file).
SCREENSHOTS = Path(os.environ.get("AIVIDEO_SCREENSHOT_DIR") or ROOT / "docs" / "screenshots")
CHROMIUM = os.environ.get("AIVIDEO_CHROMIUM", "/usr/bin/chromium")
LISTENING = re.compile(r"aivideo: listening on (http://127\.0\.0\.1:(\d+))/api/ai-video/")
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "[::1]", "::1"}


def aivideo_bin() -> Path:
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    if not target.is_absolute():
        target = ROOT / target
    path = target / "debug" / "aivideo"
    if not path.exists():
        pytest.fail(f"{path} is missing: run scripts/browser-test (it builds it)")
    return path


class Server:
    """`aivideo serve --addr 127.0.0.1:0` on a fresh data dir; the port comes from its stderr line."""

    def __init__(self, cors_origins: list[str] | None = None) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="aivideo-browser-"))
        self.secret = secrets.token_hex(32)
        self.env = {
            **os.environ,
            "JWT_SECRET": self.secret,
            # The local provider answers at once; poll it often so renders take seconds.
            "AIVIDEO_PROVIDER_POLL_MS": "200",
            "RUST_LOG": "warn",
            "AIVIDEO_LOG": "text",
        }
        args = [str(aivideo_bin()), "serve", "--addr", "127.0.0.1:0", "--data-dir", str(self.dir / "data")]
        for origin in cors_origins or []:
            args += ["--cors-origin", origin]
        self.log: list[str] = []
        self.proc = subprocess.Popen(args, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.origin = self._wait_for_port()
        self.api = f"{self.origin}/api/ai-video"
        self.port = int(self.origin.rsplit(":", 1)[1])

    def _wait_for_port(self) -> str:
        found: dict[str, str] = {}
        ready = threading.Event()

        def drain() -> None:
            assert self.proc.stderr is not None
            for line in self.proc.stderr:
                self.log.append(line.rstrip())
                match = LISTENING.search(line)
                if match and not ready.is_set():
                    found["origin"] = match.group(1)
                    ready.set()
            ready.set()

        threading.Thread(target=drain, daemon=True).start()
        if not ready.wait(60) or "origin" not in found:
            self.stop()
            raise RuntimeError("aivideo serve did not start:\n" + "\n".join(self.log[-30:]))
        return found["origin"]

    def token(self, user: str) -> str:
        out = subprocess.run(
            [str(aivideo_bin()), "token", "--user", user, "--data-dir", str(self.dir / "data")],
            env=self.env,
            check=True,
            capture_output=True,
            text=True,
        )
        return out.stdout.strip()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)
        panics = [line for line in self.log if "panicked" in line]
        assert not panics, "the server panicked:\n" + "\n".join(panics)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
        pass


class StaticServer:
    """The console/ folder over plain HTTP on another loopback port: another origin."""

    def __init__(self, directory: Path = CONSOLE_DIR) -> None:
        handler = functools.partial(_QuietHandler, directory=str(directory))
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.port = self.httpd.server_address[1]
        self.origin = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="session")
def browser() -> Browser:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run scripts/browser-test (it installs Debian's chromium)")
    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--autoplay-policy=no-user-gesture-required"],
        )
        yield b
        b.close()


class PageWatch:
    """What a page did: every request's URL (all must be loopback), console messages, failures."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.requests: list[str] = []
        self.console: list[str] = []
        self.failed: list[str] = []
        self.page_errors: list[str] = []
        self.error_answers: list[str] = []
        page.on("request", lambda r: self.requests.append(r.url))
        page.on("response", lambda r: r.status >= 400 and self.error_answers.append(f"{r.status} {r.request.method} {r.url}"))
        page.on("console", lambda m: self.console.append(f"{m.type}: {m.text}"))
        page.on("requestfailed", lambda r: self.failed.append(f"{r.method} {r.url} {r.failure}"))
        page.on("pageerror", lambda e: self.page_errors.append(str(e)))

    def assert_loopback_only(self) -> None:
        outside = [u for u in self.requests if urlsplit(u).scheme in ("http", "https") and urlsplit(u).hostname not in LOOPBACK_HOSTS]
        assert not outside, f"requests left loopback: {outside}"

    def assert_no_script_errors(self) -> None:
        assert not self.page_errors, f"uncaught errors in the page: {self.page_errors}"


@pytest.fixture()
def new_page(browser: Browser):
    """A fresh context (own storage) and page at a viewport; closed after the test."""
    contexts = []

    def make(width: int = 1280, height: int = 800) -> tuple[Page, PageWatch]:
        context = browser.new_context(viewport={"width": width, "height": height})
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(15_000)
        return page, PageWatch(page)

    yield make
    for context in contexts:
        context.close()


def screenshot(page: Page, name: str, full_page: bool = False, top: str | None = None) -> Path:
    """docs/screenshots/<name>.png: the viewport (no animation, no caret, no focus ring), scrolled
    so that the element `top` (a CSS selector) is at its top."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.evaluate("document.activeElement instanceof HTMLElement && document.activeElement.blur()")
    if top:
        page.evaluate("s => document.querySelector(s).scrollIntoView({block: 'start'})", top)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page, animations="disabled", caret="hide")
    return path


def wait_until(predicate, timeout: float, what: str, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)
