"""A real headless Chromium driven by Selenium, started once per session.

``browser`` (session scope) finds ``chromium`` and ``chromedriver`` on ``PATH`` (or
under ``/usr/bin`` and ``/usr/lib/chromium``); when either is missing and the session
runs as root on Debian/Ubuntu it installs them with ``apt-get install -y chromium
chromium-driver``. It then starts Chrome with ``--headless=new --no-sandbox
--disable-dev-shm-usage`` at a fixed window size (so screenshots are stable) and quits
it at session end.

If no browser can be started, tests that need one are skipped with the reason, or
fail when the ``CI`` environment variable is set.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

__all__ = ["BrowserUnavailable", "browser", "find_binaries"]

_CHROMIUM = ("chromium", "chromium-browser", "google-chrome")
_FOLDERS = ("/usr/bin", "/usr/lib/chromium")


class BrowserUnavailable(RuntimeError):
    """Chromium or its driver is missing and cannot be installed, or did not start."""


def _which(names: tuple[str, ...]) -> str | None:
    for name in names:
        found = shutil.which(name)
        if found:
            return found
        for folder in _FOLDERS:
            path = Path(folder) / name
            if path.is_file() and os.access(path, os.X_OK):
                return str(path)
    return None


def find_binaries() -> tuple[str, str] | None:
    """``(chromium, chromedriver)`` when both are installed, else None."""
    chromium, driver = _which(_CHROMIUM), _which(("chromedriver",))
    return (chromium, driver) if chromium and driver else None


def _install() -> None:
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise BrowserUnavailable(
            "chromium and chromedriver not found on PATH, and they can only be installed "
            "automatically as root with apt-get (install the 'chromium' and "
            "'chromium-driver' packages)"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "chromium", "chromium-driver"]
    done = subprocess.run(install, env=env, capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        # The package lists may be missing or stale: refresh them once and retry.
        for cmd in (["apt-get", "update"], install):
            done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
            if done.returncode != 0:
                raise BrowserUnavailable(f"{' '.join(cmd)} failed: {done.stderr[-2000:]}")


def _unavailable(reason: str) -> None:
    message = f"headless Chromium unavailable, browser tests NOT run: {reason}"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def _start() -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binaries = find_binaries()
    if binaries is None:
        _install()
        binaries = find_binaries()
        if binaries is None:
            raise BrowserUnavailable("apt-get installed chromium-driver but no chromedriver found")
    chromium, driver = binaries
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in (
        "--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
        "--window-size=1280,900", "--force-device-scale-factor=1", "--lang=en-US",
    ):  # fmt: skip
        options.add_argument(arg)
    return webdriver.Chrome(options=options, service=Service(executable_path=driver))


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """A Selenium ``webdriver.Chrome`` on headless Chromium, shared by the session."""
    try:
        import selenium  # noqa: F401
    except ImportError as exc:
        _unavailable(f"cannot import selenium ({exc}); pip install selenium")
    try:
        driver = _start()
    except (BrowserUnavailable, OSError, subprocess.TimeoutExpired) as exc:
        _unavailable(str(exc))
    except Exception as exc:  # selenium's WebDriverException and kin
        _unavailable(f"{type(exc).__name__}: {exc}")
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
