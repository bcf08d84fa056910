"""The web UI in a real headless Chromium (Selenium): one ``umlaut ui`` process per
module on a SQLite store populated here; click through to a failed call, promote
after signing in, the drift charts (and the computing state reloading into them),
axe's accessibility checks and screenshots.

Set ``UMLAUT_UPDATE_SCREENSHOTS=1`` to rewrite ``docs/images/ui-models.png``.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from umlaut_server import hash_token

from umlaut_core import AuditRecord, Umlaut
from umlaut_core.clock import utcnow
from umlaut_core.ids import encode_id
from umlaut_core.testing.models import double

pytest.importorskip("selenium")
pytest.importorskip("pandas")

from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

ADMIN = "admin-token-" + "9" * 24
RECORDS = 120  # Iris v2's audit records, one every 10 minutes back from now (drift judges >= 100)
REPO = Path(__file__).resolve().parents[3]
SCREENSHOT = REPO / "docs" / "images" / "ui-models.png"


@dataclass
class UiServer:
    """A running ``umlaut ui``: its base URL, process and store."""

    url: str
    proc: subprocess.Popen[bytes]
    uri: str
    log: Path

    def stderr(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


def _record(i: int, now: dt.datetime) -> AuditRecord:
    started = now - dt.timedelta(minutes=10 * i + 1)
    failed = i % 7 == 3
    return AuditRecord(
        id=encode_id(int(started.timestamp() * 1000), 1000 + i),
        model_name="Iris",
        version=2,
        selector="stage=Production",
        inputs_json=json.dumps({"a": 150.0 + i * 2.5, "b": float(i % 5)}),
        output_json=None if failed else json.dumps(i * 2.0),
        status="error" if failed else "ok",
        started_at=started,
        duration_ms=2.5,
        reference_id=f"order-{i:03d}",
        error_type="ValueError" if failed else None,
        error_message=f"feature a out of range in call {i}" if failed else None,
    )


def populate(um: Umlaut) -> None:
    """Two training runs; Iris v1 then v2 (Production, trained on a tracked dataset);
    120 audited calls of v2, every 7th an error, with inputs shifted from training."""
    import pandas as pd  # type: ignore[import-untyped,unused-ignore]

    runs = []
    for name, alpha in (("fit-a", 0.1), ("fit-b", 0.2)):
        with um.start_run("iris", name=name) as run:
            run.log_param("alpha", alpha)
            for step in range(10):
                run.log_metric("loss", alpha / (step + 1))
        runs.append(run.run_id)
    frame = pd.DataFrame({"a": [float(i) for i in range(200)], "b": [i % 5 for i in range(200)]})
    ds = um.track_dataset(frame, "iris-train")
    um.track_model(double, "Iris", run=runs[0], reason="first cut")
    um.track_model(
        double, "Iris", stage="Production", run=runs[1], datasets={"train": ds}, reason="better"
    )
    um.tracker.record_runs([_record(i, utcnow()) for i in range(RECORDS)])


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1):
            return True
    except urllib.error.HTTPError:
        return True  # 401 without a token: the server is up
    except OSError:
        return False


@pytest.fixture(scope="module")
def ui_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UiServer]:
    root = tmp_path_factory.mktemp("ui-browser")
    uri = f"sqlite:///{root}/ui.db"
    um = Umlaut(uri, delivery="sync")
    try:
        populate(um)
    finally:
        um.close()
    tokens = root / "tokens.txt"
    tokens.write_text(f"{hash_token(ADMIN)}=read,admin\n", encoding="utf-8")
    env = {**os.environ, "UMLAUT_HOME": str(root / "home")}
    for var in ("UMLAUT_SERVE_TOKENS", "UMLAUT_TRACKING_URI", "UMLAUT_ARTIFACT_URI"):
        env.pop(var, None)
    port = _free_port()
    command = [
        sys.executable, "-m", "umlaut_core.cli", "--tracking-uri", uri,
        "ui", "--host", "127.0.0.1", "--port", str(port), "--tokens-file", str(tokens),
    ]  # fmt: skip
    log = root / "stderr.log"
    with open(log, "wb") as err:
        proc = subprocess.Popen(command, env=env, stdout=err, stderr=err, cwd=root)
    server = UiServer(f"http://127.0.0.1:{port}", proc, uri, log)
    deadline = time.monotonic() + 30
    while not _answers(server.url + "/ui/login"):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"umlaut ui did not start ({proc.poll()}):\n{server.stderr()}")
        time.sleep(0.1)
    try:
        yield server
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@pytest.fixture(scope="module")
def driver(browser: Any, ui_server: UiServer) -> Any:
    """The session's browser, signed in with the admin token on this module's server."""
    browser.delete_all_cookies()
    # Elements a click brings are waited for (up to 10 s), not expected at once: a
    # loaded CI machine renders the next page a moment later.
    browser.implicitly_wait(10)
    browser.get(f"{ui_server.url}/ui/login")
    browser.find_element(By.CSS_SELECTOR, '[data-testid="login-token"]').send_keys(ADMIN)
    browser.find_element(By.CSS_SELECTOR, '[data-testid="login-submit"]').click()
    assert _page(browser, "models") == "models", browser.page_source[:2000]
    return browser


def _one(driver: Any, testid: str) -> Any:
    return driver.find_element(By.CSS_SELECTOR, f'[data-testid="{testid}"]')


def _all(driver: Any, testid: str) -> list[Any]:
    return list(driver.find_elements(By.CSS_SELECTOR, f'[data-testid="{testid}"]'))


def _page(driver: Any, expected: str, timeout: float = 15.0) -> str:
    """The page now shown, once it is ``expected`` (or the timeout passes): after a
    click the browser may still show the previous page for a moment, so an
    immediate read would race the navigation."""
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException

    def shown(d: Any) -> str | None:
        try:
            page = str(d.find_element(By.TAG_NAME, "main").get_attribute("data-page"))
        except (NoSuchElementException, StaleElementReferenceException):
            return None
        return page if page == expected else None

    try:
        return str(WebDriverWait(driver, timeout, poll_frequency=0.1).until(shown))
    except Exception:
        try:
            return str(driver.find_element(By.TAG_NAME, "main").get_attribute("data-page"))
        except Exception:
            return "<no main element>"


def _shot(driver: Any, folder: Path, name: str) -> Path:
    path = folder / f"{name}.png"
    assert driver.save_screenshot(str(path)), f"no screenshot of {name}"
    assert path.stat().st_size > 1000
    return path


class TestClickThrough:
    """From the models page down to one failed call, by clicking as a user does."""

    def test_models_to_failed_call(self, driver: Any, ui_server: UiServer, tmp_path: Path) -> None:
        driver.get(f"{ui_server.url}/ui/")
        row = driver.find_element(By.CSS_SELECTOR, '[data-testid="model-row"][data-model="Iris"]')
        assert row.find_element(By.CSS_SELECTOR, '[data-testid="calls-24h"]').text == str(RECORDS)
        _shot(driver, tmp_path, "models")
        if os.environ.get("UMLAUT_UPDATE_SCREENSHOTS") == "1":
            SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
            _shot(driver, SCREENSHOT.parent, SCREENSHOT.stem)

        row.find_element(By.CSS_SELECTOR, '[data-testid="model-link"]').click()
        assert _page(driver, "model") == "model"
        assert _one(driver, "model-name").text.strip() == "Iris"
        versions = _all(driver, "version-row")
        assert [v.get_attribute("data-version") for v in versions] == ["2", "1"]
        assert "Production" in _one(driver, "current-stages").text
        _shot(driver, tmp_path, "model")

        versions[0].find_element(By.CSS_SELECTOR, '[data-testid="version-link"]').click()
        assert _page(driver, "version") == "version"
        assert "iris-train" in _one(driver, "lineage-datasets").text
        _shot(driver, tmp_path, "version")

        driver.find_element(By.CSS_SELECTOR, '[data-testid="nav-records"]').click()
        assert _page(driver, "records") == "records"
        assert len(_all(driver, "record-row")) == 50
        Select(_one(driver, "filter-status")).select_by_value("error")
        _one(driver, "filter-model").clear()
        _one(driver, "filter-model").send_keys("Iris")
        _one(driver, "filter-submit").click()
        WebDriverWait(driver, 15).until(lambda d: "status=error" in d.current_url)
        rows = _all(driver, "record-row")
        assert len(rows) == len([i for i in range(RECORDS) if i % 7 == 3])
        assert all("error" in r.text for r in rows)
        _shot(driver, tmp_path, "records-errors")

        rows[0].find_element(By.CSS_SELECTOR, '[data-testid="record-link"]').click()
        assert _page(driver, "record") == "record"
        assert _one(driver, "record-reference-id").text.strip() == "order-003"
        assert _one(driver, "record-error-type").text.strip() == "ValueError"
        assert "feature a out of range in call 3" in _one(driver, "record-error").text
        assert '"a": 157.5' in _one(driver, "record-inputs").text
        _shot(driver, tmp_path, "record")


class TestPromote:
    """Signed in as admin, promote with a reason: the ledger and the store show it."""

    def test_promote_with_reason(self, driver: Any, ui_server: UiServer, tmp_path: Path) -> None:
        reason = "browser test: keep v1 warm for A/B"
        driver.get(f"{ui_server.url}/ui/versions/1/Iris")
        _one(driver, "promote-stage").send_keys("Staging")
        _one(driver, "promote-reason").send_keys(reason)
        _one(driver, "promote-submit").click()
        assert "Staging" in _one(driver, "promote-done").text
        _shot(driver, tmp_path, "promoted")

        driver.find_element(By.CSS_SELECTOR, '[data-testid="promote-done"] a').click()
        assert _page(driver, "model") == "model"
        reasons = [e.text for e in _all(driver, "ledger-reason")]
        assert reason in reasons, reasons
        _shot(driver, tmp_path, "model-ledger")

        um = Umlaut(ui_server.uri, delivery="sync")
        try:
            history = um.stage_history("Iris")
        finally:
            um.close()
        mine = [c for c in history if c.reason == reason]
        assert len(mine) == 1 and mine[0].to_version == 1 and mine[0].stage == "Staging"


class TestDrift:
    """The drift page draws one chart per feature, with marks in it."""

    def test_charts(self, driver: Any, ui_server: UiServer, tmp_path: Path) -> None:
        driver.get(f"{ui_server.url}/ui/drift/Iris")
        assert _page(driver, "drift") == "drift"
        assert _one(driver, "drift-verdict").get_attribute("data-drifted") == "true"
        charts = _all(driver, "drift-feature-chart")
        assert {c.get_attribute("data-feature") for c in charts} >= {"a", "b"}
        for chart in charts:
            svg = chart.find_element(By.TAG_NAME, "svg")
            assert svg.is_displayed() and svg.size["width"] > 50
            marks = svg.find_elements(By.CSS_SELECTOR, "rect, path, line, polyline, circle")
            assert len(marks) >= 3, chart.get_attribute("outerHTML")[:500]
        _shot(driver, tmp_path, "drift")

    def test_computing_state_reloads_into_the_report(
        self, driver: Any, ui_server: UiServer, tmp_path: Path
    ) -> None:
        url = f"{ui_server.url}/ui/drift/Iris?since=2001-01-01T00:00"  # a window not warmed
        driver.get(url)
        assert _page(driver, "drift") == "drift"
        assert "reloads itself" in _one(driver, "drift-computing").text
        _shot(driver, tmp_path, "drift-computing")
        # No script runs here: only the page's <meta http-equiv="refresh"> brings the report.
        WebDriverWait(driver, 20, poll_frequency=0.2).until(
            lambda d: d.find_elements(By.CSS_SELECTOR, '[data-testid="drift-verdict"]')
        )
        assert driver.current_url == url
        assert _all(driver, "drift-feature-chart")
        assert 'data-testid="drift-computing"' not in driver.page_source


class TestAccessibility:
    """axe finds nothing serious or critical on the main pages."""

    @pytest.mark.parametrize("path", ["/ui/", "/ui/records?status=error", "/ui/drift/Iris"])
    def test_axe(self, driver: Any, ui_server: UiServer, path: str) -> None:
        from axe_selenium_python import Axe  # type: ignore[import-untyped]

        driver.get(ui_server.url + path)
        axe = Axe(driver)
        axe.inject()
        results = axe.run()
        bad = [v for v in results["violations"] if v.get("impact") in ("serious", "critical")]
        report = "\n".join(
            f"{v['impact']} {v['id']}: {v['help']} -> "
            + "; ".join(n["target"][0] for n in v["nodes"][:5])
            for v in bad
        )
        print(report)
        assert not bad, f"axe violations on {path}:\n{report}"
