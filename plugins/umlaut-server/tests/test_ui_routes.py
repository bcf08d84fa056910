"""The web UI's routes through the ASGI app (no server process), on ``memory:`` and
SQLite stores populated here: every page renders, filters and keyset paging, the
streamed exports, promotion's guards, error pages, escaping, the warm-up at startup,
the drift page's cache and computing state, mounting and the CLI."""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import io
import json
import logging
import re
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast
from urllib.parse import quote

import httpx
import pytest
from click.testing import CliRunner
from umlaut_server import ServeConfig, create_app, hash_token
from umlaut_server._auth import parse_tokens
from umlaut_server.ui import UiSettings, create_ui_app
from umlaut_server.ui.cache import Revalidating
from umlaut_server.ui.ledger import stage_on
from umlaut_server.ui.traffic import REFRESH_PER_CALL, Traffic, hour_starts

from umlaut_core import AuditRecord, Capability, RunQuery, StageChange, Umlaut
from umlaut_core.cli import make_cli
from umlaut_core.clock import utcnow
from umlaut_core.exceptions import BackendError
from umlaut_core.ids import encode_id
from umlaut_core.protocols import ScanningTracker
from umlaut_core.testing.models import double

HOSTILE = '<script>alert("x")</script>'
READ, ADMIN, RUN = "read-token-1234567890", "admin-token-1234567890", "run-token-1234567890"
TOKENS = parse_tokens(
    [("tests", f"{hash_token(READ)}=read;{hash_token(ADMIN)}=read,admin;{hash_token(RUN)}=run")]
)
RECORDS = 120  # Iris's audit records, one every 15 minutes back from now
CSRF = re.compile(r'name="csrf" value="([0-9a-f]{64})"')


class Client:
    """A synchronous face on httpx's ASGI client (Starlette's TestClient warns: it
    wants httpx2). As a context manager it runs the app's lifespan, as uvicorn does:
    startup before the first request, shutdown at the end."""

    def __init__(self, app: Any, token: str | None = None) -> None:
        self.app = app
        self.runner = asyncio.Runner()
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        transport = httpx.ASGITransport(app=app)
        self.http = httpx.AsyncClient(
            transport=transport, base_url="http://testserver", headers=headers
        )

    def get(self, url: str, **kw: Any) -> httpx.Response:
        return self.runner.run(self.http.get(url, **kw))

    def post(self, url: str, data: dict[str, str], **kw: Any) -> httpx.Response:
        return self.runner.run(self.http.post(url, data=data, **kw))

    def csrf(self, url: str) -> str:
        found = CSRF.search(self.get(url).text)
        assert found, "the page holds no CSRF field"
        return found.group(1)

    def close(self) -> None:
        self.runner.run(self.http.aclose())
        self.runner.close()

    def __enter__(self) -> Client:
        self.runner.run(self._lifespan())
        return self

    def __exit__(self, *exc: object) -> None:
        async def shutdown() -> dict[str, Any]:
            await self._events.put({"type": "lifespan.shutdown"})
            await self._task
            return await self._ended

        assert self.runner.run(shutdown())["type"] == "lifespan.shutdown.complete"
        self.close()

    async def _lifespan(self) -> None:
        self._events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        started = asyncio.get_running_loop().create_future()
        self._ended = asyncio.get_running_loop().create_future()

        async def send(message: dict[str, Any]) -> None:
            if message["type"].startswith("lifespan.startup"):
                started.set_result(message)
            else:
                self._ended.set_result(message)

        scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
        self._task = asyncio.ensure_future(self.app(scope, self._events.get, send))
        await self._events.put({"type": "lifespan.startup"})
        message = await started
        assert message["type"] == "lifespan.startup.complete", message

    @property
    def ui(self) -> Any:
        """The UI behind ``create_ui_app``'s app (its report cache, its counts)."""
        return self.app.state.ui


def _record(i: int, now: dt.datetime, model: str = "Iris", version: int = 2) -> AuditRecord:
    started = now - dt.timedelta(minutes=15 * i + 1)
    failed = i % 10 == 3
    return AuditRecord(
        id=encode_id(int(started.timestamp() * 1000), 1000 + i),
        model_name=model,
        version=version,
        selector="stage=Production",
        inputs_json=json.dumps({"a": float(i), "note": "<img src=x onerror=alert(1)>"}),
        output_json=None if failed else json.dumps(i * 2.0),
        status="error" if failed else "ok",
        started_at=started,
        duration_ms=1.5,
        reference_id=f"ref-{i}",
        error_type="ValueError" if failed else None,
        error_message="<script>boom</script>" if failed else None,
    )


def populate(um: Umlaut) -> dict[str, Any]:
    """Two training runs, Iris v1 (Production, then Staging) and v2 (Production), the
    hostile model, 120 audit records of Iris and 3 of the hostile model."""
    ids = []
    for name, alpha in (("fit-a", 0.1), ("fit-b", 0.2)):
        with um.start_run("iris", name=name) as run:
            run.log_param("alpha", alpha)
            for step in range(10):
                run.log_metric("loss", alpha / (step + 1))
        ids.append(run.run_id)
    datasets: dict[str, Any] = {}
    try:
        import pandas as pd  # type: ignore[import-untyped]

        frame = pd.DataFrame({"a": [float(i) for i in range(200)], "y": range(200)})
        datasets["train"] = um.track_dataset(frame, "iris-train", target="y")
    except Exception as exc:  # a backend without datasets
        assert type(exc).__name__ == "BackendNotFoundError"
    um.track_model(double, "Iris", stage="Production", run=ids[0], reason="first cut")
    um.track_model(lambda x: x, "Iris", run=ids[1], datasets=datasets or None)
    um.promote("Iris", 1, "Staging", reason="kept for A/B")
    um.promote("Iris", 2, "Production", reason="better loss")
    um.track_model(double, HOSTILE, stage="Production", run=ids[0], reason="<b>bold</b>")
    now = utcnow()
    um.tracker.record_runs([_record(i, now) for i in range(RECORDS)])
    um.tracker.record_runs([_record(200 + i, now, HOSTILE, 1) for i in range(3)])
    return {"runs": ids, "now": now, "datasets": bool(datasets)}


@pytest.fixture(scope="module", params=["memory", "sqlite"])
def store(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Umlaut, dict[str, Any]]]:
    um = _open(request.param, tmp_path_factory.mktemp("ui"))
    yield um, populate(um)
    um.close()


def _open(kind: str, folder: Path) -> Umlaut:
    uri = "memory:" if kind == "memory" else f"sqlite:///{folder}/ui.db"
    return Umlaut(uri, delivery="sync")


@pytest.fixture
def client(store: tuple[Umlaut, dict[str, Any]]) -> Iterator[Client]:
    c = Client(create_ui_app(store[0], UiSettings(TOKENS)), READ)
    yield c
    c.close()


def _m(name: str) -> str:
    return quote(name, safe="/")


def _rows(html: str, testid: str) -> list[str]:
    return re.findall(rf'data-testid="{testid}" data-[a-z-]+="([^"]*)"', html)


class TestPages:
    """Every page answers 200 with its content, a Server-Timing header and no script."""

    def test_models(self, client: Client, store: tuple[Umlaut, dict[str, Any]]) -> None:
        r = client.get("/ui/")
        assert r.status_code == 200 and "Production · v2" in r.text
        hours = hour_starts(utcnow())
        day = [_record(i, store[1]["now"]) for i in range(RECORDS)]
        calls = [rec for rec in day if rec.started_at >= hours[0]]
        errors = sum(rec.status == "error" for rec in calls)
        row = r.text.split('data-model="Iris"')[1]
        assert f'data-testid="calls-24h">{len(calls)}<' in row
        assert f"{errors / len(calls):.1%}" in row
        assert row.count('class="bar"') >= 20  # hourly bars of the trend
        assert "server-timing" in r.headers and "total;dur=" in r.headers["server-timing"]

    def test_model_versions_and_ledger(self, client: Client) -> None:
        text = client.get("/ui/models/Iris").text
        assert _rows(text, "version-row") == ["2", "1"]
        assert text.count('data-testid="ledger-entry"') == 3
        assert "kept for A/B" in text and "better loss" in text
        assert 'data-testid="stage-lanes"' in text and "<svg" in text

    def test_stage_on_date(self, client: Client) -> None:
        today = utcnow().date().isoformat()
        text = client.get(f"/ui/models/Iris?stage=Production&on={today}").text
        assert 'data-testid="stage-on-date-answer" data-version="2"' in text
        before = client.get("/ui/models/Iris?stage=Production&on=2001-01-01").text
        assert "pointed at no version" in before
        assert client.get("/ui/models/Iris?on=yesterday").status_code == 400

    def test_version(self, client: Client, store: tuple[Umlaut, dict[str, Any]]) -> None:
        um, facts = store
        mv = um.get_version("Iris", version=1)
        text = client.get("/ui/versions/1/Iris").text
        assert mv.digest in text and 'data-testid="manifest"' in text
        assert facts["runs"][0] in text and "fit-a" in text  # lineage: the run
        assert 'data-stage="Staging"' in text
        v2 = client.get("/ui/versions/2/Iris").text
        if facts["datasets"]:
            assert "iris-train v1" in v2 and 'data-testid="signature-table"' in v2
        else:
            assert "this backend keeps no datasets" in v2

    def test_records_and_one_record(self, client: Client) -> None:
        text = client.get("/ui/records?model=Iris").text
        assert text.count('data-testid="record-row"') == 50
        first = _rows(text, "record-row")[0]
        page = client.get(f"/ui/records/{first}")
        assert page.status_code == 200 and "&#34;a&#34;: 0.0" in page.text
        assert 'data-testid="record-lineage-run"' in page.text
        raw = client.get(f"/ui/records/{first}.json").json()
        assert raw["id"] == first and raw["inputs"]["a"] == 0.0

    def test_failed_record_shows_its_error(self, client: Client) -> None:
        text = client.get("/ui/records?model=Iris&status=error").text
        rid = _rows(text, "record-row")[0]
        page = client.get(f"/ui/records/{rid}").text
        assert 'data-testid="record-error-type">ValueError<' in page
        assert "&lt;script&gt;boom&lt;/script&gt;" in page and "<script>boom" not in page

    def test_training_runs(self, client: Client, store: tuple[Umlaut, dict[str, Any]]) -> None:
        a, b = store[1]["runs"]
        text = client.get("/ui/training-runs?experiment=iris").text
        assert sorted(_rows(text, "training-run-row")) == sorted([a, b])
        assert 'data-testid="param-column">alpha<' in text
        assert 'data-testid="metric-column">loss<' in text
        assert text.count('data-testid="run-checkbox"') == 2
        run = client.get(f"/ui/training-runs/{a}").text
        assert 'data-testid="metric-chart" data-metric="loss"' in run and "<polyline" in run
        both = client.get(f"/ui/training-runs/compare?run={a}&run={b}").text
        assert 'data-key="alpha" data-differs="true"' in both and both.count("<polyline") == 2
        assert client.get(f"/ui/training-runs/compare?run={a}").status_code == 400

    def test_bad_run_filter_is_explained(self, client: Client) -> None:
        r = client.get("/ui/training-runs?filter=params.alpha+%3E%3E+1")
        assert r.status_code == 400 and 'data-testid="runs-problem"' in r.text

    def test_datasets(self, client: Client, store: tuple[Umlaut, dict[str, Any]]) -> None:
        listing = client.get("/ui/datasets")
        assert listing.status_code == 200
        if not store[1]["datasets"]:
            assert 'data-testid="missing-concern" data-concern="datasets"' in listing.text
            return
        text = client.get("/ui/datasets/iris-train").text
        assert _rows(text, "profile-row") == ["a", "y"]
        assert 'data-testid="dataset-model-link">Iris v2<' in text

    def test_drift(self, client: Client, store: tuple[Umlaut, dict[str, Any]]) -> None:
        first = client.get("/ui/drift/Iris?since=2001-01-01T00:00")
        assert first.status_code == 200 and 'data-testid="drift-computing"' in first.text
        assert client.ui.reports.wait_idle(30)
        r = client.get("/ui/drift/Iris?since=2001-01-01T00:00")
        assert r.status_code == 200 and 'data-testid="drift-verdict"' in r.text
        assert 'data-testid="drift-operations"' in r.text
        if store[1]["datasets"]:
            assert 'data-testid="drift-feature-chart" data-feature="a"' in r.text

    def test_static_and_security_headers(self, client: Client) -> None:
        css = client.get("/ui/static/ui.css")
        assert css.status_code == 200 and "prefers-color-scheme: dark" in css.text
        page = client.get("/ui/")
        assert "default-src 'none'" in page.headers["content-security-policy"]
        assert page.headers["cache-control"] == "no-store"
        assert page.text.count("<h1") == 1 and 'href="#main"' in page.text


class TestAuditTrail:
    """Filters narrow the trail; keyset pages of 50 follow ``before=`` without overlap."""

    def test_pages_follow_the_cursor(self, client: Client, store: tuple[Umlaut, Any]) -> None:
        expected = [r.id for r in store[0].history("Iris", limit=RECORDS, include_pending=False)]
        seen: list[str] = []
        url: str | None = "/ui/records?model=Iris"
        pages = 0
        while url:
            text = client.get(url).text
            seen += _rows(text, "record-row")
            pages += 1
            found = re.search(r'href="([^"]+)" id="older-page"', text)
            url = found.group(1).replace("&amp;", "&") if found else None
            if pages > 1:
                assert 'data-testid="newest-page"' in text
        assert pages == 3 and seen == expected
        assert f"before={expected[49]}" in client.get("/ui/records?model=Iris").text

    @pytest.mark.parametrize(
        ("query", "count"),
        [("status=error", 12), ("reference_id=ref-7", 1), ("version=1", 0), ("stage=Staging", 0)],
    )
    def test_filters(self, client: Client, query: str, count: int) -> None:
        text = client.get(f"/ui/records?model=Iris&{query}").text
        assert text.count('data-testid="record-row"') == count

    def test_stage_resolves_through_the_ledger(self, client: Client) -> None:
        text = client.get("/ui/records?model=Iris&stage=Production").text
        assert 'data-testid="stage-resolved"' in text and "version 2" in text

    def test_time_window(self, client: Client, store: tuple[Umlaut, Any]) -> None:
        now = store[1]["now"]
        since, until = now - dt.timedelta(hours=5), now - dt.timedelta(hours=2)
        day = [_record(i, now) for i in range(RECORDS)]
        want = [r for r in day if since <= r.started_at < until]
        q = {"model": "Iris", "since": since.isoformat(), "until": until.isoformat()}
        text = client.get("/ui/records", params=q).text
        assert _rows(text, "record-row") == [r.id for r in want]

    @pytest.mark.parametrize(
        "query", ["version=x", "status=maybe", "before=nope", "since=soon", "stage=Production"]
    )
    def test_bad_filters_answer_400(self, client: Client, query: str) -> None:
        r = client.get(f"/ui/records?{query}")
        assert r.status_code == 400 and 'data-testid="error-message"' in r.text


class TestExport:
    """The current filter exports as CSV or JSON lines, streamed a page at a time."""

    def test_csv(self, client: Client) -> None:
        r = client.get("/ui/records.csv?model=Iris&status=error")
        assert r.headers["content-type"].startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(r.text)))
        assert len(rows) == 12 and {row["status"] for row in rows} == {"error"}
        assert rows[0]["error_message"] == "<script>boom</script>"  # data, as stored
        assert json.loads(rows[0]["inputs"])["note"].startswith("<img")

    def test_jsonl(self, client: Client, store: tuple[Umlaut, Any]) -> None:
        lines = client.get("/ui/records.jsonl?model=Iris").text.splitlines()
        records = [json.loads(line) for line in lines]
        expected = store[0].history("Iris", limit=RECORDS, include_pending=False)
        assert [r["id"] for r in records] == [r.id for r in expected]
        assert records[0]["inputs"] == expected[0].inputs

    def test_streams_page_by_page(self, store: tuple[Umlaut, Any]) -> None:
        app = create_ui_app(store[0], UiSettings(TOKENS, export_page=7))
        messages = _asgi_get(app, "/ui/records.jsonl", "model=Iris", READ)
        start, bodies = messages[0], [m for m in messages[1:] if m.get("body")]
        assert start["status"] == 200
        assert b"content-length" not in dict(start["headers"])
        assert len(bodies) == -(-RECORDS // 7)  # one chunk per page of 7
        assert sum(m["body"].count(b"\n") for m in bodies) == RECORDS


def _asgi_get(app: Any, path: str, query: str, token: str) -> list[dict[str, Any]]:
    """The ASGI messages a GET produces, as the server would send them."""
    sent: list[dict[str, Any]] = []
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
        "scheme": "http", "path": path, "raw_path": path.encode(), "root_path": "",
        "query_string": query.encode(), "server": ("testserver", 80), "client": ("1.2.3.4", 1),
        "headers": [(b"host", b"testserver"), (b"authorization", f"Bearer {token}".encode())],
    }  # fmt: skip

    async def run() -> None:
        done = asyncio.Event()
        requested = False

        async def receive() -> dict[str, Any]:
            nonlocal requested
            if not requested:
                requested = True
                return {"type": "http.request", "body": b"", "more_body": False}
            await done.wait()  # the client stays until the whole body has come
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)
            if message["type"] == "http.response.body" and not message.get("more_body"):
                done.set()

        await app(scope, receive, send)

    asyncio.run(run())
    return sent


@pytest.fixture(params=["memory", "sqlite"])
def fresh(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Umlaut]:
    um = _open(request.param, tmp_path)
    um.track_model(double, "Iris", stage="Production", reason="first")
    um.track_model(lambda x: x, "Iris")
    yield um
    um.close()


class TestPromotion:
    """Promoting needs an admin token, the form's CSRF token and a reason; it reaches
    the ledger like any promotion."""

    def _post(self, c: Client, data: dict[str, str], **kw: Any) -> httpx.Response:
        return c.post("/ui/versions/2/Iris", data, **kw)

    def test_refused_without_token_or_scope(self, fresh: Umlaut) -> None:
        app = create_ui_app(fresh, UiSettings(TOKENS))
        anonymous, reader = Client(app), Client(app, READ)
        form = {"stage": "Production", "reason": "go", "csrf": reader.csrf("/ui/login")}
        assert self._post(anonymous, form).status_code == 401
        assert 'data-testid="promote-form"' not in reader.get("/ui/versions/2/Iris").text
        assert self._post(reader, form).status_code == 403
        assert len(fresh.stage_history("Iris")) == 1
        anonymous.close()
        reader.close()

    def test_refused_without_csrf_or_reason(self, fresh: Umlaut) -> None:
        c = Client(create_ui_app(fresh, UiSettings(TOKENS)), ADMIN)
        token = c.csrf("/ui/versions/2/Iris")
        for wrong in ({}, {"csrf": "0" * 64}):  # none, or not the cookie's
            form = {"stage": "Production", "reason": "go", **wrong}
            assert self._post(c, form).status_code == 403
        foreign = {"origin": "https://evil.example"}
        form = {"stage": "Production", "reason": "go", "csrf": token}
        assert self._post(c, form, headers=foreign).status_code == 403
        r = self._post(c, {"stage": "Production", "reason": "  ", "csrf": token})
        assert r.status_code == 400 and 'data-testid="promote-error"' in r.text
        bad = self._post(c, {"stage": "latest", "reason": "go", "csrf": token})
        assert bad.status_code == 400 and "reserved" in bad.text
        assert len(fresh.stage_history("Iris")) == 1
        c.close()

    def test_admin_promotes_with_a_reason(self, fresh: Umlaut) -> None:
        c = Client(create_ui_app(fresh, UiSettings(TOKENS)), ADMIN)
        token = c.csrf("/ui/versions/2/Iris")
        form = {"stage": "Production", "reason": "beats v1 on <eval>", "csrf": token}
        r = self._post(c, form)
        assert r.status_code == 303 and r.headers["location"].endswith("?promoted=Production")
        last = fresh.stage_history("Iris", "Production")[-1]
        assert (last.from_version, last.to_version, last.reason) == (1, 2, "beats v1 on <eval>")
        done = c.get(r.headers["location"]).text
        assert 'data-testid="promote-done"' in done
        ledger = c.get("/ui/models/Iris").text
        assert "beats v1 on &lt;eval&gt;" in ledger
        c.close()

    def test_sign_in_cookie_then_promote(self, fresh: Umlaut) -> None:
        c = Client(create_ui_app(fresh, UiSettings(TOKENS)))
        assert c.get("/ui/").status_code == 401
        token = c.csrf("/ui/login")
        wrong = c.post("/ui/login", {"token": "nope", "csrf": token, "next": "/ui/"})
        assert wrong.status_code == 401
        r = c.post("/ui/login", {"token": ADMIN, "csrf": token, "next": "//evil.example/"})
        assert r.status_code == 303 and r.headers["location"] == "/ui/"
        cookie = r.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie and "path=/ui" in cookie
        assert c.get("/ui/").status_code == 200
        form = {"stage": "Staging", "reason": "try it", "csrf": token}
        assert self._post(c, form).status_code == 303
        assert fresh.get_version("Iris", stage="Staging").version == 2
        out = c.post("/ui/logout", {"csrf": token})
        assert out.status_code == 303 and c.get("/ui/").status_code == 401
        c.close()

    def test_no_auth_opens_pages_never_writes(self, fresh: Umlaut) -> None:
        c = Client(create_ui_app(fresh, UiSettings(no_auth=True)))
        assert c.get("/ui/").status_code == 200
        page = c.get("/ui/versions/2/Iris").text
        assert 'data-testid="promote-unavailable"' in page
        form = {"stage": "Production", "reason": "go", "csrf": "0" * 64}
        assert self._post(c, form).status_code == 401  # before the CSRF check
        assert fresh.get_version("Iris", stage="Production").version == 1
        c.close()


class TestErrors:
    """Unknown things are 404 pages, failures are pages without a trace, names stay text."""

    @pytest.mark.parametrize(
        "path",
        [
            "/ui/models/Nope",
            "/ui/versions/9/Iris",
            "/ui/records/01ARZ3NDEKTSV4RRFFQ69G5FAV",
            "/ui/records/not-an-id",
            "/ui/training-runs/0123456789abcdef",
            "/ui/drift/Nope",
            "/ui/no/such/page",
        ],
    )
    def test_unknown_is_a_404_page(self, client: Client, path: str) -> None:
        r = client.get(path)
        assert r.status_code == 404 and r.headers["content-type"].startswith("text/html")
        assert 'data-testid="error-message"' in r.text and "Traceback" not in r.text

    def test_store_failures_show_no_details(
        self, store: tuple[Umlaut, Any], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        c = Client(create_ui_app(store[0], UiSettings(TOKENS)), READ)

        def down() -> None:
            raise BackendError("cannot reach postgresql://umlaut:hunter2@db/umlaut")

        monkeypatch.setattr(store[0], "list_models", down)
        r = c.get("/ui/")
        assert r.status_code == 503 and "hunter2" not in r.text and "postgresql" not in r.text
        monkeypatch.setattr(store[0], "list_models", lambda: 1 / 0)
        r = c.get("/ui/")
        assert r.status_code == 500 and "ZeroDivisionError" not in r.text
        c.close()

    @pytest.mark.parametrize(
        "path",
        [
            "/ui/",
            f"/ui/models/{_m(HOSTILE)}",
            f"/ui/versions/1/{_m(HOSTILE)}",
            f"/ui/records?model={quote(HOSTILE)}",
            f"/ui/drift/{_m(HOSTILE)}",
            "/ui/records?model=Iris&status=error",
        ],
    )
    def test_hostile_names_stay_text(self, client: Client, path: str) -> None:
        r = client.get(path)
        assert r.status_code == 200, r.text[:500]
        assert "<script>" not in r.text and "<img" not in r.text and "<b>bold" not in r.text
        assert "&lt;script&gt;" in r.text

    def test_tokens_without_read_are_refused(self, store: tuple[Umlaut, Any]) -> None:
        app = create_ui_app(store[0], UiSettings(TOKENS))
        for token, status in ((None, 401), ("unknown-token", 401), (RUN, 403), (ADMIN, 200)):
            c = Client(app, token)
            r = c.get("/ui/")
            assert r.status_code == status
            if status == 401:
                assert 'data-testid="login-form"' in r.text and "WWW-Authenticate" in r.headers
            c.close()


class Gate:
    """Stands in for ``Umlaut.drift_report``: counts calls, holds each until opened,
    then answers with the real report, or raises ``error``."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.calls = 0
        self.opened = threading.Event()
        self.error: Exception | None = None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        assert self.opened.wait(30), "the gate was never opened"
        if self.error is not None:
            raise self.error
        return self.real(*args, **kwargs)


@pytest.fixture
def gate(store: tuple[Umlaut, Any], monkeypatch: pytest.MonkeyPatch) -> Iterator[Gate]:
    found = Gate(store[0].drift_report)
    monkeypatch.setattr(store[0], "drift_report", found)
    yield found
    found.opened.set()  # no report thread left waiting


DRIFT = "/ui/drift/Iris"
REFRESH = '<meta http-equiv="refresh" content="2">'


class TestWarmUpAndDriftCache:
    """Startup warms the counts and drift reports; the drift page never waits for one."""

    def test_startup_counts_traffic_and_leaves_reports_to_the_background(
        self, store: tuple[Umlaut, Any], gate: Gate, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        um = store[0]
        started = time.monotonic()
        with Client(create_ui_app(um, UiSettings(TOKENS, warm_up=True)), READ) as c:
            assert time.monotonic() - started < 10  # the gate holds the reports, not startup
            with monkeypatch.context() as m:

                def cold(query: RunQuery) -> int:
                    raise AssertionError("the models page counted: the warm-up did not")

                m.setattr(um.tracker, "count_runs", cold)
                r = c.get("/ui/")
            assert r.status_code == 200 and 'data-testid="calls-24h">' in r.text
            computing = c.get(DRIFT)
            assert 'data-testid="drift-computing"' in computing.text
            gate.opened.set()
            assert c.ui.reports.wait_idle(30)
            assert gate.calls == 2  # Iris and the hostile model: one report each, no more
            r = c.get(DRIFT)
            assert 'data-testid="drift-verdict"' in r.text and REFRESH not in r.text

    def test_warm_up_is_bounded_and_failures_are_logged(
        self,
        store: tuple[Umlaut, Any],
        monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        um = store[0]
        held = threading.Event()
        monkeypatch.setattr(um, "list_models", lambda: held.wait(30) and [])  # a store that hangs
        settings = UiSettings(TOKENS, warm_up=True, warm_up_timeout=0.2)
        started = time.monotonic()
        with caplog.at_level(logging.WARNING, "umlaut.ui"), Client(create_ui_app(um, settings)):
            assert time.monotonic() - started < 5
            held.set()
        assert "took over 0.2 s" in caplog.text

        def down() -> list[Any]:
            raise BackendError("cannot reach postgresql://umlaut:hunter2@db/umlaut")

        monkeypatch.setattr(um, "list_models", down)
        caplog.clear()
        with caplog.at_level(logging.WARNING, "umlaut.ui"), Client(create_ui_app(um, settings)):
            pass
        assert "warming the models page failed (BackendError" in caplog.text

    def test_computing_state_refreshes_itself_until_the_report(
        self, store: tuple[Umlaut, Any], gate: Gate
    ) -> None:
        with Client(create_ui_app(store[0], UiSettings(TOKENS)), READ) as c:
            for _ in range(3):  # however many ask, one computation
                r = c.get(DRIFT)
                assert r.status_code == 200 and 'data-testid="drift-computing"' in r.text
                head = r.text.split("</head>")[0]
                assert REFRESH in head and 'data-testid="drift-verdict"' not in r.text
                csp = r.headers["content-security-policy"]  # no directive covers a refresh
                assert "default-src 'none'" in csp and "script-src" not in csp
            gate.opened.set()
            assert c.ui.reports.wait_idle(30) and gate.calls == 1
            r = c.get(DRIFT)
            assert 'data-testid="drift-verdict"' in r.text and REFRESH not in r.text
            assert 'data-testid="drift-computed" data-refreshing="false"' in r.text

    def test_stale_report_is_shown_while_one_refresh_runs(
        self, store: tuple[Umlaut, Any], gate: Gate
    ) -> None:
        settings = UiSettings(TOKENS, report_ttl=0.0)  # every report is stale at once
        with Client(create_ui_app(store[0], settings), READ) as c:
            gate.opened.set()
            c.get(DRIFT)
            assert c.ui.reports.wait_idle(30) and gate.calls == 1
            gate.opened.clear()
            for _ in range(3):  # the refresh is held: each view shows the last report
                r = c.get(DRIFT)
                assert 'data-testid="drift-verdict"' in r.text and REFRESH not in r.text
                assert 'data-testid="drift-computed" data-refreshing="true"' in r.text
            assert gate.calls == 2
            gate.opened.set()
            assert c.ui.reports.wait_idle(30) and gate.calls == 2

    def test_a_failed_computation_is_shown_then_retried(
        self, store: tuple[Umlaut, Any], gate: Gate
    ) -> None:
        gate.error = BackendError("cannot reach postgresql://umlaut:hunter2@db/umlaut")
        gate.opened.set()
        with Client(create_ui_app(store[0], UiSettings(TOKENS, report_ttl=0.0)), READ) as c:
            assert 'data-testid="drift-computing"' in c.get(DRIFT).text
            assert c.ui.reports.wait_idle(30)
            r = c.get(DRIFT)
            assert r.status_code == 503 and 'data-testid="drift-error"' in r.text
            assert "hunter2" not in r.text and REFRESH not in r.text
            assert 'data-testid="drift-computing"' in c.get(DRIFT).text  # shown: retried
            assert c.ui.reports.wait_idle(30) and gate.calls == 2
            assert c.get(DRIFT).status_code == 503

            gate.error = None  # a good report, then a refresh that fails beside it
            assert 'data-testid="drift-computing"' in c.get(DRIFT).text
            assert c.ui.reports.wait_idle(30)
            gate.error = ZeroDivisionError("boom")
            c.get(DRIFT)
            assert c.ui.reports.wait_idle(30)
            r = c.get(DRIFT)
            assert r.status_code == 200 and 'data-testid="drift-verdict"' in r.text
            assert 'data-testid="drift-refresh-error" data-status="500"' in r.text
            assert "ZeroDivisionError" not in r.text


class TestMountingAndCli:
    """``umlaut serve --ui`` mounts the same pages; ``umlaut ui`` builds its app."""

    def test_serve_mounts_the_ui(self, fresh: Umlaut) -> None:
        config = ServeConfig(all_models=True, tokens=TOKENS, ui=True, access_log=None)
        c = Client(create_app(config, fresh), READ)
        assert c.get("/ui/").status_code == 200
        assert c.get("/ui/static/ui.css").status_code == 200
        assert c.get("/ui/records").status_code == 200
        assert c.get("/v1/models").status_code == 200
        c.close()
        without = ServeConfig(all_models=True, tokens=TOKENS, access_log=None)
        plain = Client(create_app(without, fresh), READ)
        assert plain.get("/ui/").status_code == 404
        plain.close()
        assert ServeConfig.from_json(config.to_json()).ui is True

    def test_serve_warms_the_ui_in_its_lifespan(self, fresh: Umlaut) -> None:
        config = ServeConfig(all_models=True, tokens=TOKENS, ui=True, access_log=None)
        with Client(create_app(config, fresh), READ) as c:  # closes ``fresh`` at the end
            assert c.get("/ui/").status_code == 200
            assert c.get("/ui/drift/Iris").status_code == 200

    def test_cli_needs_tokens_or_no_auth(self, monkeypatch: pytest.MonkeyPatch) -> None:
        import uvicorn

        monkeypatch.delenv("UMLAUT_SERVE_TOKENS", raising=False)
        ran: dict[str, Any] = {}
        monkeypatch.setattr(uvicorn, "run", lambda app, **kw: ran.update(app=app, **kw))
        runner = CliRunner()
        refused = runner.invoke(make_cli(), ["--tracking-uri", "memory:", "ui"])
        assert refused.exit_code == 1 and "--no-auth" in refused.output
        ok = runner.invoke(make_cli(), ["--tracking-uri", "memory:", "ui", "--no-auth"])
        assert ok.exit_code == 0, ok.output
        assert ran["host"] == "127.0.0.1" and ran["port"] == 8081
        c = Client(ran["app"])
        assert c.get("/", follow_redirects=True).status_code == 200
        c.close()
        ran["app"].state.umlaut.close()


class TestParts:
    """The pieces under the pages: packaged files, the ledger by date, traffic counts."""

    def test_templates_and_styles_ship_in_the_package(self) -> None:
        ui = resources.files("umlaut_server.ui")
        assert (ui / "templates" / "base.html").is_file()
        assert (ui / "static" / "ui.css").is_file()

    def test_stage_on_a_day(self) -> None:
        day = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
        changes = [
            StageChange("M", "Production", None, 1, day - dt.timedelta(days=2)),
            StageChange("M", "Production", 1, 2, day + dt.timedelta(hours=9)),
            StageChange("M", "Staging", None, 3, day + dt.timedelta(hours=10)),
            StageChange("M", "Production", 2, 3, day + dt.timedelta(days=1, hours=1)),
        ]
        found = stage_on(changes, "Production", day.date())
        assert (found.at_start, found.at_end, len(found.moves)) == (1, 2, 1)
        assert stage_on(changes, "Production", dt.date(2026, 2, 1)).at_end is None

    def test_one_computation_per_key_however_many_ask(self) -> None:
        cache: Revalidating[int] = Revalidating(60.0)
        held, calls = threading.Event(), []

        def make() -> int:
            calls.append(1)
            held.wait(10)
            return 7

        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda _: cache.get("k", make), range(32)))
        assert all(a.computing and a.value is None for a in answers)
        held.set()
        assert cache.wait_idle(10) and len(calls) == 1
        got = cache.get("k", make)
        assert (got.value, got.computing, got.stale, got.error) == (7, False, False, None)
        cache.close()

    def test_counting_caches_settled_hours(self, store: tuple[Umlaut, Any]) -> None:
        um = store[0]
        calls = {"n": 0}

        class Counting:
            capabilities = frozenset({Capability.SCAN_RUNS})

            def count_runs(self, query: RunQuery) -> int:
                calls["n"] += 1
                return cast(ScanningTracker, um.tracker).count_runs(query)

        traffic = Traffic(_facade(um, Counting()))
        now = utcnow()
        first = traffic.day("Iris", now)
        cold = calls["n"]
        assert traffic.day("Iris", now) == first and calls["n"] == cold  # all cached
        expired = Traffic(_facade(um, Counting()), ttl=0.0)
        expired.day("Iris", now)
        calls["n"] = 0
        assert expired.day("Iris", now) == first
        assert calls["n"] <= 2 * REFRESH_PER_CALL  # two hours recounted, the rest wait

    def test_paging_without_counts_stops_at_the_cap(self, store: tuple[Umlaut, Any]) -> None:
        um = store[0]
        blind = _facade(um, type("Blind", (), {"capabilities": frozenset()})())
        now = utcnow()
        counted = Traffic(um).day("Iris", now)
        paged = Traffic(blind, cap=5000).day("Iris", now)
        assert (paged.calls, paged.errors, paged.capped) == (counted.calls, counted.errors, False)
        capped = Traffic(blind, cap=10).day("Iris", now)
        assert capped.capped and capped.total == 10


def _facade(um: Umlaut, tracker: object) -> Umlaut:
    """What Traffic reads of an Umlaut (its tracker, history()), with another tracker."""
    return cast(Umlaut, SimpleNamespace(tracker=tracker, history=um.history))
