"""Passwords in database URLs and S3 credentials never reach a repr, a log line, an
error message (with its whole chained traceback), an audit record, or any file the
session writes (the spool with its -wal/-shm, a log file, the stored bundles).

The session runs once per way of writing the password: base64 with unencoded ``/`` and
``+``; unencoded ``#`` and ``?`` with an encoded ``@``; in the query string.

botocore's own DEBUG logging prints the access key id in its request signing lines;
that is botocore's, not ours, so only umlaut's loggers are captured at DEBUG here
(documented in the README: do not run botocore at DEBUG where logs are shared).
"""

from __future__ import annotations

import logging
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from umlaut_core import Umlaut
from umlaut_core.exceptions import BackendError, UmlautError
from umlaut_core.testing.models import Failing, Threshold

from .conftest import ACCESS_KEY, SECRET_KEY

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

UMLAUT_LOGGERS = ("umlaut", "umlaut_core", "umlaut_sql", "umlaut_s3", "umlaut_mlflow")


@dataclass(frozen=True)
class Credential:
    """How the database password is written into the URL, and what must never show."""

    name: str
    #: Replaces "://postgres@" in the server's URL.
    userinfo: str
    #: Appended to the URL's query string ("" for none).
    query: str
    #: Every spelling of the secret: raw, as written in the URL, and telltale pieces.
    secrets: tuple[str, ...]


CREDENTIALS = [
    # base64: unencoded "/" and "+", which the old regex stopped at (issue #12)
    Credential(
        "base64",
        "://postgres:Zm9v/YmFy+cXV4@",
        "",
        ("Zm9v/YmFy+cXV4", "Zm9v", "YmFy+cXV4", "cXV4"),
    ),
    # "#" and "?" unencoded (SQLAlchemy accepts them), "@" percent-encoded (it must be)
    Credential(
        "at-hash-question",
        "://postgres:Pg#S3c?r%40t-77@",
        "",
        ("Pg#S3c?r@t-77", "Pg#S3c?r%40t-77", "S3c?r", "r%40t-77", "r@t-77"),
    ),
    # the password in the query string, beside an SSL key password
    Credential(
        "query",
        "://postgres@",
        "password=Qry-S3cret-4412&application_name=umlaut-test",
        ("Qry-S3cret-4412", "S3cret-4412"),
    ),
]


def _everything(exc: BaseException) -> str:
    return str(exc) + "".join(traceback.format_exception(exc))


def _files_under(*folders: Path) -> dict[str, bytes]:
    """Every file the run wrote (spool with its -wal/-shm, logs, bundles), as bytes."""
    return {
        str(p): p.read_bytes()
        for folder in folders
        if folder.exists()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


class TestSecretsStayHidden:
    """Run a whole session with a password and S3 keys, then grep every output and file."""

    @pytest.mark.parametrize("cred", CREDENTIALS, ids=[c.name for c in CREDENTIALS])
    def test_no_output_or_file_contains_a_secret(
        self,
        cred: Credential,
        pg_backend: Any,
        postgres_server: Any,
        caplog: pytest.LogCaptureFixture,
        capfd: pytest.CaptureFixture[str],
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        for name in UMLAUT_LOGGERS:
            caplog.set_level(logging.DEBUG, logger=name)
        run = tmp_path / "run"  # the working directory: anything written here is checked
        run.mkdir()
        monkeypatch.chdir(run)
        log_file = logging.FileHandler(run / "umlaut.log")
        log_file.setLevel(logging.DEBUG)
        logging.getLogger().addHandler(log_file)
        url = pg_backend.tracking.replace("://postgres@", cred.userinfo)
        if cred.query:
            url += ("&" if "?" in url else "?") + cred.query
        assert url != pg_backend.tracking
        options = {
            **pg_backend.artifact_options,
            "aws_access_key_id": ACCESS_KEY,
            "aws_secret_access_key": SECRET_KEY,
        }
        seen: list[str] = []
        try:
            u = Umlaut(url, pg_backend.artifact, artifact_options=options, spool_warn_after=0)
            seen += [repr(u), repr(u.tracker), repr(u.artifact_store), repr(u.settings), str(u)]
            assert u.artifact_store is not None
            seen += [u.tracker.uri, u.artifact_store.uri, str(u.settings.sources)]
            u.track_model(Threshold(1), "secret", stage="Production")
            u.track_model(Failing(), "failing")
            u.run_model("secret", {"x": 2}, stage="Production", reference_id="r1")
            with pytest.raises(ValueError):
                u.run_model("failing", {"x": -1})
            u.run_batch("secret", [{"x": 1}, {"x": 3}], stage="Production")
            assert u.flush(timeout=30)

            postgres_server.pause()
            try:
                for _ in range(3):  # spooled: served, queued, and the outage is logged
                    u.run_model("secret", {"x": 5}, stage="Production")
                u.flush(timeout=1.5)
                seen.append(repr(u.pending()))
                sync = None
                with pytest.raises(BackendError) as info:
                    sync = Umlaut(
                        url, pg_backend.artifact, artifact_options=options, delivery="sync"
                    )
                seen.append(_everything(info.value))
                assert sync is None
            finally:
                postgres_server.resume()
            assert u.flush(timeout=60)

            errors: list[UmlautError] = []
            here = f"127.0.0.1:{postgres_server.port}/{pg_backend.tracking.rsplit('/', 1)[1]}"
            assert here in url
            no_db = here.rsplit("/", 1)[0] + "/no_such_db"
            for attempt in (
                lambda: Umlaut(url.replace(here, "127.0.0.1:1/db"), str(run / "a")),
                lambda: Umlaut(url.replace(here, no_db), str(run / "a")),
                lambda: Umlaut(
                    url, "s3://no-such-bucket-secret/x", artifact_options=options
                ).track_model(Threshold(9), "other"),
                lambda: u.run_model("secret", {"x": 1}, stage="Nope"),
            ):  # fmt: skip
                with pytest.raises(UmlautError) as caught:
                    attempt()
                errors.append(caught.value)
            seen += [_everything(e) for e in errors]

            for record in u.history(limit=1000):
                seen.append(repr(record))
            seen += [repr(c) for c in u.stage_history("secret")]
            spool = Path(u.pending().path)
            u.close()
        finally:
            logging.getLogger().removeHandler(log_file)
            log_file.close()
        assert spool.is_relative_to(tmp_path / "home")
        for table in ("umlaut_runs", "umlaut_versions", "umlaut_stage_ledger", "umlaut_models"):
            seen += [repr(tuple(row)) for row in pg_backend.sql(f"SELECT * FROM {table}")]
        out = capfd.readouterr()  # file descriptors: the shipper process's stderr too
        seen += [out.out, out.err, caplog.text]
        assert "waiting in" in caplog.text  # the outage warning was logged and checked
        text = "\n".join(seen)
        assert "127.0.0.1" in text and "***" in text  # the URI is shown, redacted

        files = _files_under(run, tmp_path / "home")
        assert any(name.startswith(str(spool)) for name in files), sorted(files)
        assert (run / "umlaut.log").read_text()  # the log file was written and is checked
        for key, _ in pg_backend.objects().items():  # every bundle in the bucket
            files[f"s3://{pg_backend.bucket}/{key}"] = pg_backend.s3.get_object(
                Bucket=pg_backend.bucket, Key=key
            )["Body"].read()

        for secret in (*cred.secrets, SECRET_KEY, ACCESS_KEY):
            leaks = [
                part[max(0, part.find(secret) - 300) : part.find(secret) + 50]
                for part in seen
                if secret in part
            ]
            assert not leaks, (secret, leaks)
            raw = secret.encode()
            in_files = [name for name, data in files.items() if raw in data]
            assert not in_files, (secret, in_files)
