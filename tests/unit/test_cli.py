"""The ``umlaut`` console script: every command, formats, exit codes, streaming, hook."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
import os
import pickle
import shutil
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click
import pluggy
import pytest
from click.testing import CliRunner

from umlaut_core import StageChange, Umlaut, get_plugin_manager, hookimpl
from umlaut_core.cli import make_cli
from umlaut_core.cli.running import csv_cell
from umlaut_core.cli.stages import pointed_at
from umlaut_core.packer import compute_digest, pack, read_manifest
from umlaut_core.testing.models import Echo, ExampleModel, Failing, Threshold

SECRET = "Zm9v/YmFy+cXV4"
KEY = "a-signing-key-of-32-bytes-length"
Invoke = Callable[..., Any]


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working folder as UMLAUT_HOME's parent, and no other umlaut variable."""
    for var in list(os.environ):
        if var.startswith("UMLAUT_"):
            monkeypatch.delenv(var)
    monkeypatch.setenv("UMLAUT_HOME", str(tmp_path / ".umlaut"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def home(workdir: Path) -> Path:
    """``workdir``, where the embedded default (umlaut-sql's SQLite file) will live."""
    pytest.importorskip("umlaut_sql", reason="the embedded default needs umlaut-sql")
    return workdir


@pytest.fixture
def invoke(home: Path) -> Invoke:
    """Run the CLI in-process (CliRunner) with the installed plugins."""
    cli = make_cli()
    runner = CliRunner()

    def call(*args: str, input: str | bytes | None = None) -> Any:
        return runner.invoke(cli, list(args), input=input)

    return call


@pytest.fixture
def seeded(home: Path) -> Iterator[Umlaut]:
    """The embedded default with two models: 'Revenue' (v1 Staging, v2 Production) and
    'Root' (Failing, raising for negative x)."""
    umlaut = Umlaut()
    umlaut.track_model(ExampleModel(), "Revenue", stage="Staging")
    umlaut.track_model(Threshold(10), "Revenue", stage="Production")
    umlaut.track_model(Failing(), "Root", stage="Production")
    yield umlaut
    umlaut.close()


def one_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    return lines[0]


def console_script() -> str:
    found = shutil.which("umlaut", path=str(Path(sys.executable).parent))
    if found is None:
        pytest.skip("the umlaut console script is not installed next to this Python")
    return found


class TestModels:
    """models list / show print the store's models in every format."""

    def test_list_in_every_format(self, invoke: Invoke, seeded: Umlaut) -> None:
        table = invoke("models", "list")
        assert table.exit_code == 0, table.output
        assert "Revenue" in table.stdout and "Production=2" in table.stdout
        data = json.loads(invoke("models", "list", "--format", "json").stdout)
        assert data == [
            {"name": "Revenue", "latest_version": 2,
             "aliases": {"Production": 2, "Staging": 1}, "description": None},
            {"name": "Root", "latest_version": 1, "aliases": {"Production": 1},
             "description": None},
        ]  # fmt: skip
        lines = invoke("models", "list", "--format", "jsonl").stdout.splitlines()
        assert [json.loads(line) for line in lines] == data
        rows = list(csv.DictReader(io.StringIO(invoke("models", "list", "--format", "csv").stdout)))
        assert rows[0] == {
            "name": "Revenue",
            "latest_version": "2",
            "aliases": '{"Production":2,"Staging":1}',
            "description": "",
        }

    def test_show_lists_versions_and_stages(self, invoke: Invoke, seeded: Umlaut) -> None:
        result = invoke("models", "show", "Revenue", "--format", "json")
        assert result.exit_code == 0, result.output
        shown = json.loads(result.stdout)
        assert shown["latest_version"] == 2
        assert [(v["version"], v["stages"]) for v in shown["versions"]] == [
            (1, ["Staging"]),
            (2, ["Production"]),
        ]
        assert shown["versions"][0]["created_at"].endswith("+00:00")
        assert "versions" in invoke("models", "show", "Revenue").stdout

    def test_empty_store_lists_nothing(self, invoke: Invoke) -> None:
        assert json.loads(invoke("models", "list", "--format", "json").stdout) == []
        assert invoke("models", "list", "--format", "csv").stdout.strip() == (
            "name,latest_version,aliases,description"
        )


class TestVersions:
    """versions list / show: digests, manifests, the input signature, stages."""

    def test_list(self, invoke: Invoke, seeded: Umlaut) -> None:
        data = json.loads(invoke("versions", "list", "Revenue", "--format", "json").stdout)
        assert [(v["version"], v["stages"]) for v in data] == [
            (1, ["Staging"]),
            (2, ["Production"]),
        ]
        assert set(data[0]) == {
            "name", "version", "digest", "flavor", "created_at", "created_by", "description",
            "stages",
        }  # fmt: skip

    def test_show_has_manifest_digest_and_signature(self, invoke: Invoke, home: Path) -> None:
        with Umlaut() as umlaut:
            mv = umlaut.track_model(
                Echo(), "Echo", signature={"x": "int"}, params={"a": 1}, metrics={"auc": 0.9}
            )
        result = invoke("versions", "show", "Echo", "1", "--format", "json")
        assert result.exit_code == 0, result.output
        shown = json.loads(result.stdout)
        assert shown["digest"] == mv.digest == shown["manifest"]["digest"]
        assert shown["signature"] == {"x": "int"}
        assert shown["params"] == {"a": 1} and shown["metrics"] == {"auc": 0.9}
        assert "created" not in shown
        table = invoke("versions", "show", "Echo", "1").stdout
        assert "manifest" in table and mv.digest in table

    def test_unknown_version_is_one_line(self, invoke: Invoke, seeded: Umlaut) -> None:
        result = invoke("versions", "show", "Revenue", "9")
        assert result.exit_code == 1
        assert one_line(result.stderr).startswith("VersionNotFoundError: ")


class TestPromoteAndStages:
    """promote moves a stage; stages history reads the ledger, now or at a moment."""

    def test_promote_writes_the_ledger(self, invoke: Invoke, seeded: Umlaut) -> None:
        result = invoke("promote", "Revenue", "2", "Staging", "--reason", "better", "--format",
                        "json")  # fmt: skip
        assert result.exit_code == 0, result.output
        change = json.loads(result.stdout)
        assert (change["from_version"], change["to_version"], change["reason"]) == (1, 2, "better")
        ledger = json.loads(
            invoke("stages", "history", "Revenue", "--stage", "Staging", "--format", "json").stdout
        )
        assert [(c["from_version"], c["to_version"]) for c in ledger] == [(None, 1), (1, 2)]

    def test_at_answers_which_version_a_stage_pointed_at(self, invoke: Invoke, home: Path) -> None:
        with Umlaut() as umlaut:
            umlaut.track_model(Threshold(1), "m", stage="Production")
            umlaut.track_model(Threshold(2), "m")
            time.sleep(0.01)
            between = dt.datetime.now(dt.UTC)
            time.sleep(0.01)
            umlaut.promote("m", 2, "Production", reason="v2 is better")

        def at(moment: str) -> list[dict[str, Any]]:
            result = invoke("stages", "history", "m", "--at", moment, "--format", "json")
            assert result.exit_code == 0, result.output
            return json.loads(result.stdout)  # type: ignore[no-any-return]

        assert [(r["stage"], r["version"]) for r in at(between.isoformat())] == [("Production", 1)]
        now = at(dt.datetime.now(dt.UTC).isoformat())
        assert (now[0]["version"], now[0]["reason"]) == (2, "v2 is better")
        assert at("2000-03-01")[0]["version"] is None  # not set yet on that day
        naive = between.replace(tzinfo=None).isoformat()  # no offset: UTC
        assert at(naive)[0]["version"] == 1
        assert invoke("stages", "history", "m", "--at", "1 March").exit_code == 2

    def test_pointed_at_takes_the_last_move_at_or_before(self) -> None:
        t = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
        ledger = [
            StageChange("m", "Production", None, 1, t),
            StageChange("m", "Production", 1, 2, t + dt.timedelta(days=1)),
            StageChange("m", "Staging", None, 3, t + dt.timedelta(days=2)),
        ]
        on_day = pointed_at(ledger, t + dt.timedelta(days=1))
        assert on_day["Production"].to_version == 2  # a move counts from its moment
        assert on_day["Staging"] is None
        assert pointed_at(ledger, t)["Production"].to_version == 1


class TestRun:
    """run prints the output as JSON; a model error is one audited line, exit 1."""

    def test_inline_file_and_stdin(self, invoke: Invoke, seeded: Umlaut, home: Path) -> None:
        result = invoke("run", "Revenue", "--stage", "Production", "--input", '{"x": 11}')
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout) == {"above": True, "limit": 10}
        (home / "in.json").write_text('{"revenue": 9}', encoding="utf-8")
        result = invoke("run", "Revenue", "--version", "1", "--input", "@in.json")
        assert json.loads(result.stdout) is True
        result = invoke("run", "Revenue", "--version", "1", "--input", "-", input='{"revenue": 1}')
        assert json.loads(result.stdout) is False
        result = invoke("run", "Revenue", "--input", '{"x": 1}', "--reference-id", "r-1")
        assert json.loads(result.stdout)["above"] is False  # latest: v2
        assert seeded.history("Revenue", reference_id="r-1")[0].selector == "latest"

    def test_model_error_is_one_line_and_audited(self, invoke: Invoke, seeded: Umlaut) -> None:
        result = invoke("run", "Root", "--stage", "Production", "--input", '{"x": -4}')
        assert result.exit_code == 1
        assert one_line(result.stderr) == "ModelError: ValueError: x must be >= 0, got -4"
        assert "Traceback" not in result.output
        record = seeded.history("Root")[0]
        assert (record.status, record.error_type) == ("error", "ValueError")

    def test_verbose_adds_the_traceback(self, invoke: Invoke, seeded: Umlaut) -> None:
        result = invoke("-v", "run", "Root", "--input", '{"x": -4}')
        assert result.exit_code == 1
        assert "Traceback" in result.stderr
        assert result.stderr.strip().splitlines()[-1].startswith("ModelError: ValueError")

    def test_user_and_usage_errors(self, invoke: Invoke, seeded: Umlaut) -> None:
        missing = invoke("run", "Nope", "--input", "1")
        assert missing.exit_code == 1
        assert one_line(missing.stderr).startswith("ModelNotFoundError: no model named 'Nope'")
        assert "Revenue" in missing.stderr  # says what exists
        assert invoke("run", "Revenue", "--input", "{").exit_code == 2
        assert invoke("run", "Revenue", "--input", "@missing.json").exit_code == 2
        both = invoke("run", "Revenue", "--stage", "Production", "--version", "1", "--input", "1")
        assert both.exit_code == 2
        assert invoke("run", "Revenue").exit_code == 2  # --input is required
        assert invoke("no-such-command").exit_code == 2
        nan = invoke("run", "Revenue", "--input", "NaN")
        assert nan.exit_code == 2  # not JSON


class TestRunBatch:
    """run-batch streams JSON lines or CSV through run_batch, one output line each."""

    def test_jsonl_in_chunks(self, invoke: Invoke, seeded: Umlaut, home: Path) -> None:
        lines = [json.dumps({"x": i}) for i in range(25)]
        (home / "in.jsonl").write_text("\n".join(lines[:10]) + "\n\n" + "\n".join(lines[10:]))
        result = invoke("run-batch", "Revenue", "--stage", "Production", "--input", "in.jsonl",
                        "--output", "out.jsonl", "--chunk-size", "7")  # fmt: skip
        assert result.exit_code == 0, result.output
        out = [json.loads(line) for line in (home / "out.jsonl").read_text().splitlines()]
        assert [o["index"] for o in out] == list(range(25))
        assert [o["output"]["above"] for o in out] == [i > 10 for i in range(25)]
        records = seeded.history("Revenue", limit=100)
        assert len(records) == 25 and {r.selector for r in records} == {"stage=Production"}

    def test_csv_cells_are_typed_as_json_else_text(self, invoke: Invoke, home: Path) -> None:
        with Umlaut() as umlaut:
            umlaut.track_model(Echo(), "Echo")
        (home / "in.csv").write_text(
            'a,b,c,d\n3,2.5,true,abc\nnull,"""3""",01234,\n"[1, 2]",NaN,"{""k"": 1}", x \n',
            encoding="utf-8",
        )
        result = invoke("run-batch", "Echo", "--input", "in.csv")
        assert result.exit_code == 0, result.output
        outputs = [json.loads(line)["output"] for line in result.stdout.splitlines()]
        assert outputs == [
            {"a": 3, "b": 2.5, "c": True, "d": "abc"},
            {"a": None, "b": "3", "c": "01234", "d": ""},
            {"a": [1, 2], "b": "NaN", "c": {"k": 1}, "d": " x "},
        ]

    def test_csv_cell_rule(self) -> None:
        assert [csv_cell(c) for c in ["1", "-1.5e3", "false", '"s"', "Infinity", "1,2", ""]] == [
            1, -1500.0, False, "s", "Infinity", "1,2", "",
        ]  # fmt: skip

    def test_stdin_and_csv_from_stdin(self, invoke: Invoke, home: Path) -> None:
        with Umlaut() as umlaut:
            umlaut.track_model(Echo(), "Echo")
        result = invoke("run-batch", "Echo", "--input", "-", input='1\n"two"\n[3]\n')
        assert [json.loads(x)["output"] for x in result.stdout.splitlines()] == [1, "two", [3]]
        result = invoke("run-batch", "Echo", "--input", "-", "--input-format", "csv",
                        input="x\r\n1\r\n")  # fmt: skip
        assert json.loads(result.stdout)["output"] == {"x": 1}

    def test_on_error(self, invoke: Invoke, seeded: Umlaut, home: Path) -> None:
        (home / "in.jsonl").write_text('{"x": 4}\n{"x": -1}\n{"x": 9}\n')
        going = invoke("run-batch", "Root", "--input", "in.jsonl", "--on-error", "continue")
        assert going.exit_code == 0, going.output
        out = [json.loads(line) for line in going.stdout.splitlines()]
        assert [o["status"] for o in out] == ["ok", "error", "ok"]
        assert out[1] == {
            "index": 1, "status": "error", "error_type": "ValueError",
            "error_message": "x must be >= 0, got -1",
        }  # fmt: skip
        assert "1 of 3 inputs failed" in going.stderr
        stopped = invoke("run-batch", "Root", "--input", "in.jsonl")
        assert stopped.exit_code == 1
        assert one_line(stopped.stderr) == "ModelError: ValueError: x must be >= 0, got -1"
        # continue: 3 records; raise: the two that ran.
        assert len(seeded.history("Root")) == 5

    def test_bad_input_lines(self, invoke: Invoke, seeded: Umlaut, home: Path) -> None:
        (home / "bad.jsonl").write_text('{"x": 1}\n{nope\n')
        result = invoke("run-batch", "Root", "--input", "bad.jsonl")
        assert result.exit_code == 1
        assert one_line(result.stderr).startswith("Error: line 2 of bad.jsonl is not JSON")
        (home / "bad.csv").write_text("x\n1,2\n")
        assert (
            "has 2 cells for 1 columns" in invoke("run-batch", "Root", "--input", "bad.csv").stderr
        )
        assert invoke("run-batch", "Root", "--input", "missing.jsonl").exit_code == 2


class TestHistory:
    """history filters, formats and exports, paging with before= in bounded memory."""

    def test_filters_and_formats(self, invoke: Invoke, seeded: Umlaut) -> None:
        seeded.run_model("Revenue", {"x": 1}, version=2, reference_id="a")
        start = dt.datetime.now(dt.UTC)
        with pytest.raises(ValueError):
            seeded.run_model("Root", {"x": -1})
        seeded.run_model("Root", {"x": 4}, reference_id="b")
        data = json.loads(invoke("history", "--format", "json").stdout)
        assert [r["model_name"] for r in data] == ["Root", "Root", "Revenue"]
        assert list(data[0]) == [
            "id", "model_name", "version", "selector", "status", "started_at", "duration_ms",
            "reference_id", "inputs", "output", "error_type", "error_message", "tags",
            "pending",
        ]  # fmt: skip
        assert data[0]["output"] == 2.0 and data[0]["inputs"] == {"x": 4}
        assert dt.datetime.fromisoformat(data[0]["started_at"]).tzinfo == dt.UTC

        def ids(*args: str) -> list[str]:
            result = invoke("history", "--format", "jsonl", *args)
            assert result.exit_code == 0, result.output
            return [json.loads(line)["id"] for line in result.stdout.splitlines()]

        every = [r["id"] for r in data]
        assert ids("--model", "Root") == every[:2]
        assert ids("--status", "error") == [every[1]]
        assert ids("--reference-id", "a") == [every[2]]
        assert ids("--model", "Revenue", "--version", "2") == [every[2]]
        assert ids("--since", start.isoformat()) == every[:2]
        assert ids("--until", start.isoformat()) == [every[2]]
        assert ids("--limit", "1") == [every[0]]
        assert ids("--before", every[0]) == every[1:]
        table = invoke("history")
        assert "ValueError: x must be >= 0" in table.stdout
        rows = list(csv.DictReader(io.StringIO(invoke("history", "--format", "csv").stdout)))
        assert rows[1]["error_type"] == "ValueError" and rows[1]["output"] == ""
        assert json.loads(rows[0]["inputs"]) == {"x": 4} and rows[0]["pending"] == "false"
        assert invoke("history", "--status", "maybe").exit_code == 2
        assert invoke("history", "--since", "yesterday").exit_code == 2

    def test_export_pages_every_record_once_in_order(self, invoke: Invoke, home: Path) -> None:
        with Umlaut() as umlaut:
            umlaut.track_model(Echo(), "Echo")
            assert umlaut.run_batch("Echo", range(25_000), return_outputs=False) == 25_000
        result = invoke("history", "--export", "all.csv", "--page-size", "777")
        assert result.exit_code == 0, result.output
        assert "25,000 records written to all.csv" in result.stderr
        with open(home / "all.csv", newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
        ids = [r["id"] for r in rows]
        assert len(ids) == len(set(ids)) == 25_000
        assert ids == sorted(ids, reverse=True)  # newest first, no gap, no repeat
        assert sorted(int(r["inputs"]) for r in rows) == list(range(25_000))
        result = invoke("history", "--export", "all.jsonl", "--page-size", "999", "--limit",
                        "2500", "--before", ids[100])  # fmt: skip
        lines = (home / "all.jsonl").read_text(encoding="utf-8").splitlines()
        assert [json.loads(line)["id"] for line in lines] == ids[101:2601]
        streamed = invoke("history", "--format", "jsonl", "--page-size", "4096")
        assert len(streamed.stdout.splitlines()) == 25_000  # no default limit for jsonl
        assert invoke("history", "--export", "x.txt").exit_code == 2


class TestSpool:
    """pending and flush report and ship the local spool."""

    def test_sync_delivery_has_nothing_pending(self, invoke: Invoke, seeded: Umlaut) -> None:
        shown = json.loads(invoke("pending", "--format", "json").stdout)
        assert (shown["delivery"], shown["depth"]) == ("sync", 0)
        assert invoke("flush", "--timeout", "1").exit_code == 0

    def test_spooled_records_are_pending_until_flushed(
        self, invoke: Invoke, home: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("UMLAUT_DELIVERY", "spooled")
        monkeypatch.setenv("UMLAUT_SHIPPER", "thread")
        with Umlaut() as umlaut:
            umlaut.track_model(Echo(), "Echo")
        shown = json.loads(invoke("pending", "--format", "json").stdout)
        assert shown["delivery"] == "spooled" and shown["path"].endswith(".db")
        result = invoke("flush", "--timeout", "30")
        assert result.exit_code == 0, result.output
        assert "spool empty" in result.stderr


def _bundle_file(path: Path, *, signing_key: bytes | None = None) -> bytes:
    data = pack(Threshold(3), get_plugin_manager(autoload=False), signing_key=signing_key).data
    path.write_bytes(data)
    return data


def _rezip(data: bytes, **replace: bytes) -> bytes:
    """The bundle ``data`` with some members' bytes replaced, written the same way."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            dst.writestr(info, replace.get(info.filename, src.read(info.filename)))
    return out.getvalue()


class _Boom:
    """Unpickling this creates a file: proof that something was unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> Any:
        return (Path.touch, (self.marker,))


class TestBundleInspect:
    """bundle inspect checks hashes and signatures of a file or a stored version."""

    def test_file(self, invoke: Invoke, home: Path) -> None:
        data = _bundle_file(home / "b.zip")
        result = invoke("bundle", "inspect", "b.zip", "--format", "json")
        assert result.exit_code == 0, result.output
        shown = json.loads(result.stdout)
        assert shown["digest_ok"] and shown["payload_ok"]
        assert shown["digest"] == shown["digest_recomputed"] == read_manifest(data)["digest"]
        assert shown["sha256"] == hashlib.sha256(data).hexdigest()
        assert shown["signature"] == "absent"
        assert shown["manifest"]["flavor"] == "python-class"

    def test_name_at_version_and_stage(self, invoke: Invoke, seeded: Umlaut) -> None:
        for target, version in (("Revenue@1", 1), ("Revenue@Production", 2)):
            result = invoke("bundle", "inspect", target, "--format", "json")
            assert result.exit_code == 0, result.output
            shown = json.loads(result.stdout)
            assert shown["version"] == version
            assert shown["registered_digest_ok"] and shown["registered_sha256_ok"]
        assert invoke("bundle", "inspect", "Revenue@7").exit_code == 1
        assert invoke("bundle", "inspect", "nothing-here").exit_code == 2

    def test_tampered_payload_fails_without_unpickling(self, invoke: Invoke, home: Path) -> None:
        data = _bundle_file(home / "b.zip")
        marker = home / "unpickled"
        evil = pickle.dumps(_Boom(marker))
        (home / "payload.zip").write_bytes(_rezip(data, **{"payload.pkl": evil}))
        result = invoke("bundle", "inspect", "payload.zip", "--format", "json")
        assert result.exit_code == 1
        assert json.loads(result.stdout)["payload_ok"] is False
        assert one_line(result.stderr).startswith("IntegrityError: payload.zip: payload_ok failed")
        # A consistent forgery (manifest rewritten to match) passes the hashes, and is
        # still never unpickled.
        manifest = read_manifest(data)
        manifest["payload_sha256"] = hashlib.sha256(evil).hexdigest()
        manifest["digest"] = compute_digest(manifest)
        forged = _rezip(
            data, **{"payload.pkl": evil, "MANIFEST.json": json.dumps(manifest).encode()}
        )
        (home / "forged.zip").write_bytes(forged)
        assert invoke("bundle", "inspect", "forged.zip").exit_code == 0
        assert not marker.exists()

    def test_signature(self, invoke: Invoke, home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        _bundle_file(home / "signed.zip", signing_key=KEY.encode())
        shown = json.loads(invoke("bundle", "inspect", "signed.zip", "--format", "json").stdout)
        assert shown["signature"].startswith("present")
        monkeypatch.setenv("UMLAUT_SIGNING_KEY", KEY)
        shown = json.loads(invoke("bundle", "inspect", "signed.zip", "--format", "json").stdout)
        assert shown["signature"] == "valid"
        monkeypatch.setenv("UMLAUT_SIGNING_KEY", "another-key-of-32-bytes-length!!")
        result = invoke("bundle", "inspect", "signed.zip", "--format", "json")
        assert result.exit_code == 1 and json.loads(result.stdout)["signature"] == "INVALID"
        assert KEY not in result.output and "another-key" not in result.output


class TestDoctor:
    """doctor shows settings with their sources, plugins, checks, and never a secret."""

    def test_embedded_default(self, invoke: Invoke, seeded: Umlaut) -> None:
        result = invoke("doctor", "--format", "json")
        assert result.exit_code == 0, result.output
        shown = json.loads(result.stdout)
        settings = {s["setting"]: s for s in shown["settings"]}
        assert settings["tracking_uri"]["source"] == "default"
        plugins = {p["plugin"]: p for p in shown["plugins"]}
        assert "sqlite" in plugins["sql"]["tracker_schemes"]
        assert plugins["umlaut.folder"]["artifact_schemes"] == ["file"]
        assert [c["ok"] for c in shown["checks"]] == [True, True]
        assert "settings" in invoke("doctor").stdout

    def test_secret_never_printed(
        self, invoke: Invoke, home: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        url = f"postgresql+psycopg://umlaut:{SECRET}@127.0.0.1:1/umlaut"
        (home / "pyproject.toml").write_text(
            "[tool.umlaut.profiles.team]\n"
            f'tracking_uri = "{url}"\n'
            'artifact_uri = "bundles"\n'
            "[tool.umlaut.profiles.team.tracker_options.connect_args]\n"
            f'password = "{SECRET}"\nconnect_timeout = 2\n',
            encoding="utf-8",
        )
        monkeypatch.setenv("UMLAUT_SIGNING_KEY", KEY)
        cases = [
            ["--profile", "team", "doctor", "--format", "json"],
            ["--profile", "team", "-v", "doctor"],
            ["--tracking-uri", url, "--artifact-uri", "b", "-v", "doctor"],
            ["--tracking-uri", url, "--artifact-uri", "b", "-v", "models", "list"],
            ["--tracking-uri", url, "--artifact-uri", "b", "-v", "db", "upgrade", "--dry-run"],
        ]
        for args in cases:
            result = invoke(*args)
            assert result.exit_code == 1, result.output
            for leak in (SECRET, "Zm9v", "cXV4", "YmFy", KEY):
                assert leak not in result.output, (args, result.output)
        shown = json.loads(invoke("--profile", "team", "doctor", "--format", "json").stdout)
        settings = {s["setting"]: s for s in shown["settings"]}
        assert settings["tracking_uri"]["source"] == "profile team"
        assert settings["tracking_uri"]["value"].startswith("postgresql+psycopg://umlaut:***@")
        assert settings["tracker_options"]["value"]["connect_args"]["password"] == "***"
        assert settings["signing_key"] == {
            "setting": "signing_key", "value": "*** (set)", "source": "environment",
        }  # fmt: skip
        assert shown["checks"][0]["ok"] is False

    def test_flags_beat_environment(
        self, invoke: Invoke, home: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("UMLAUT_TRACKING_URI", "memory:")
        shown = json.loads(
            invoke("--tracking-uri", "sqlite:///flag.db", "doctor", "--format", "json").stdout
        )
        settings = {s["setting"]: s for s in shown["settings"]}
        assert settings["tracking_uri"] == {
            "setting": "tracking_uri", "value": "sqlite:///flag.db", "source": "command line",
        }  # fmt: skip
        shown = json.loads(invoke("doctor", "--format", "json").stdout)
        assert {s["setting"]: s for s in shown["settings"]}["tracking_uri"]["source"] == (
            "environment"
        )


class Greeter:
    """A test plugin that adds a command through the hook."""

    @hookimpl
    def umlaut_register_commands(self, cli: click.Group) -> None:
        @cli.command()
        @click.argument("who")
        @click.pass_obj
        def hello(state: Any, who: str) -> None:
            """Say hello, with the tracking URI the global options chose."""
            click.echo(f"hello {who} from {state.settings.tracking_uri}")


class Squatter:
    """A test plugin that tries to take a core command's name."""

    @hookimpl
    def umlaut_register_commands(self, cli: click.Group) -> None:
        cli.add_command(click.Command("models"))


class TestRegisterCommands:
    """Plugins add commands through umlaut_register_commands; conflicts are errors."""

    def test_umlaut_register_commands(
        self,
        plugin_manager: pluggy.PluginManager,
        register_plugin: Callable[..., Any],
        workdir: Path,
    ) -> None:
        register_plugin(Greeter(), "greeter")
        cli = make_cli(plugin_manager)
        result = CliRunner().invoke(cli, ["--tracking-uri", "memory:", "hello", "ada"])
        assert result.exit_code == 0, result.output
        assert result.stdout == "hello ada from memory:\n"
        assert "hello" in CliRunner().invoke(cli, ["--help"]).stdout

    def test_a_taken_name_is_refused(
        self,
        plugin_manager: pluggy.PluginManager,
        register_plugin: Callable[..., Any],
        workdir: Path,
    ) -> None:
        register_plugin(Squatter(), "squatter")
        cli = make_cli(plugin_manager)
        result = CliRunner().invoke(cli, ["--help"])
        assert result.exit_code == 1
        assert one_line(result.stderr).startswith(
            "PluginError: plugin 'squatter' adds the command 'models', which umlaut-core "
            "already provides"
        )
        # The core's names always mean the core's commands.
        listed = CliRunner().invoke(cli, ["--tracking-uri", "memory:", "models", "list"])
        assert listed.exit_code == 0, listed.output

    def test_umlaut_sql_adds_db(self, invoke: Invoke) -> None:
        assert "db" in invoke("--help").stdout

    def test_explicit_plugin_manager_is_used_by_the_facade(
        self, plugin_manager: pluggy.PluginManager, workdir: Path
    ) -> None:
        cli = make_cli(plugin_manager)  # builtins only: no sqlite
        result = CliRunner().invoke(cli, ["models", "list"])
        assert result.exit_code == 1
        assert one_line(result.stderr).startswith("BackendNotFoundError: ")
        ok = CliRunner().invoke(cli, ["--tracking-uri", "memory:", "models", "list"])
        assert ok.exit_code == 0, ok.output


class TestConsoleScript:
    """The installed ``umlaut`` script: exit codes, one-line errors, stdin, cheap start."""

    def run(self, home: Path, *args: str, input: str | None = None) -> Any:
        return subprocess.run(
            [console_script(), *args],
            capture_output=True,
            text=True,
            input=input,
            cwd=home,
            env={**os.environ, "UMLAUT_HOME": str(home / ".umlaut")},
            timeout=120,
        )

    def test_exit_codes_and_errors(self, seeded: Umlaut, home: Path) -> None:
        assert self.run(home, "--help").returncode == 0
        ok = self.run(home, "run", "Revenue", "--version", "1", "--input", "-",
                      input='{"revenue": 8}')  # fmt: skip
        assert (ok.returncode, ok.stdout) == (0, "true\n")
        failed = self.run(home, "run", "Root", "--input", '{"x": -2}')
        assert failed.returncode == 1
        assert failed.stderr == "ModelError: ValueError: x must be >= 0, got -2\n"
        verbose = self.run(home, "-v", "run", "Root", "--input", '{"x": -2}')
        assert verbose.returncode == 1 and "Traceback (most recent call last)" in verbose.stderr
        usage = self.run(home, "run", "Root", "--bogus")
        assert usage.returncode == 2 and "No such option" in usage.stderr
        missing = self.run(home, "versions", "list", "Nope")
        assert missing.returncode == 1 and "Traceback" not in missing.stderr
        assert missing.stderr.count("\n") == 1

    def test_every_command_through_the_script(self, seeded: Umlaut, home: Path) -> None:
        """Each command, once, as a user's shell runs it: exit 0 and its key output."""
        seeded.run_model("Revenue", {"revenue": 3}, stage="Staging", reference_id="ref-1")
        (home / "in.jsonl").write_text('{"revenue": 1}\n{"revenue": 9}\n', encoding="utf-8")
        version = seeded.get_version("Revenue", version=1)
        commands: list[tuple[list[str], str]] = [
            (["models", "list"], "Revenue"),
            (["models", "show", "Revenue", "--format", "json"], '"latest_version": 2'),
            (["versions", "list", "Revenue", "--format", "csv"], version.digest),
            (["versions", "show", "Revenue", "1", "--format", "json"], version.digest),
            (["promote", "Revenue", "1", "Archived", "--reason", "old"], "Archived"),
            (["stages", "history", "Revenue", "--format", "jsonl"], '"to_version":2'),
            (["stages", "history", "Revenue", "--at", "2999-01-01"], "Production"),
            (["run", "Revenue", "--stage", "Staging", "--input", '{"revenue": 7}'], "true"),
            (["run-batch", "Revenue", "--version", "1", "--input", "in.jsonl"], '"status"'),
            (["history", "--reference-id", "ref-1", "--format", "jsonl"], '"ref-1"'),
            (["pending"], ""),
            (["flush"], ""),
            (["bundle", "inspect", "Revenue@1"], version.digest),
            (["doctor"], "tracking_uri"),
            (["db", "upgrade", "--dry-run"], "schema"),
            (["gc"], ""),
        ]
        for args, expected in commands:
            result = self.run(home, *args)
            assert result.returncode == 0, (args, result.stderr)
            assert expected in result.stdout, (args, result.stdout)

    def test_models_list_as_csv(self, seeded: Umlaut, home: Path) -> None:
        result = self.run(home, "models", "list", "--format", "csv")
        assert result.returncode == 0, result.stderr
        assert result.stdout.splitlines()[1].startswith("Revenue,2,")


class TestImportCost:
    """The console script starts cheaply: --help imports no backend library nor rich."""

    def test_help_imports_no_backend(self) -> None:
        code = (
            "import sys\n"
            "from umlaut_core.cli import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "heavy = ('sqlalchemy', 'mlflow', 'boto3', 'rich', 'pandas', 'numpy')\n"
            "print(sorted(m for m in heavy if m in sys.modules), file=sys.stderr)"
        )
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        assert out.stderr.strip() == "[]"
