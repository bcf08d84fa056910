"""Passwords in database URLs and S3 credentials never reach a repr, a log line, an
error message (with its whole chained traceback) or an audit record.

botocore's own DEBUG logging prints the access key id in its request signing lines;
that is botocore's, not ours, so only umlaut's loggers are captured at DEBUG here
(documented in the README: do not run botocore at DEBUG where logs are shared).
"""

from __future__ import annotations

import logging
import traceback
from pathlib import Path
from typing import Any

import pytest

from umlaut_core import Umlaut
from umlaut_core.exceptions import BackendError, UmlautError
from umlaut_core.testing.models import Failing, Threshold

from .conftest import ACCESS_KEY, SECRET_KEY

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

PASSWORD = "Pg-S3cret-Passw0rd-7731"
UMLAUT_LOGGERS = ("umlaut", "umlaut_core", "umlaut_sql", "umlaut_s3", "umlaut_mlflow")


def _everything(exc: BaseException) -> str:
    return str(exc) + "".join(traceback.format_exception(exc))


class TestSecretsStayHidden:
    """Run a whole session with a password and S3 keys, then grep every output."""

    def test_no_output_contains_a_secret(
        self,
        pg_backend: Any,
        postgres_server: Any,
        caplog: pytest.LogCaptureFixture,
        capsys: pytest.CaptureFixture[str],
        tmp_path: Path,
    ) -> None:
        for name in UMLAUT_LOGGERS:
            caplog.set_level(logging.DEBUG, logger=name)
        url = pg_backend.tracking.replace("://postgres@", f"://postgres:{PASSWORD}@")
        options = {
            **pg_backend.artifact_options,
            "aws_access_key_id": ACCESS_KEY,
            "aws_secret_access_key": SECRET_KEY,
        }
        seen: list[str] = []
        u = Umlaut(url, pg_backend.artifact, artifact_options=options, spool_warn_after=0)
        seen += [repr(u), repr(u.tracker), repr(u.artifact_store), repr(u.settings), str(u)]
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
                sync = Umlaut(url, pg_backend.artifact, artifact_options=options, delivery="sync")
            seen.append(_everything(info.value))
            assert sync is None
        finally:
            postgres_server.resume()
        assert u.flush(timeout=60)

        errors: list[UmlautError] = []
        for attempt in (
            lambda: Umlaut(
                f"postgresql+psycopg://postgres:{PASSWORD}@127.0.0.1:1/db", str(tmp_path)
            ),
            lambda: Umlaut(url.rsplit("/", 1)[0] + "/no_such_db", str(tmp_path)),
            lambda: Umlaut(
                url, "s3://no-such-bucket-secret/x", artifact_options=options
            ).track_model(Threshold(9), "other"),
            lambda: u.run_model("secret", {"x": 1}, stage="Nope"),
        ):
            with pytest.raises(UmlautError) as info:
                attempt()
            errors.append(info.value)
        seen += [_everything(e) for e in errors]

        for record in u.history(limit=1000):
            seen.append(repr(record))
        seen += [repr(c) for c in u.stage_history("secret")]
        spool = Path(u.pending().path)
        u.close()
        seen.append(spool.read_bytes().decode("utf-8", "replace") if spool.exists() else "")
        for row in pg_backend.sql("SELECT * FROM umlaut_runs"):
            seen.append(repr(tuple(row)))
        out = capsys.readouterr()
        seen += [out.out, out.err, caplog.text]
        assert "waiting in" in caplog.text  # the outage warning was logged and checked
        text = "\n".join(seen)
        assert "127.0.0.1" in text and "***" in text  # the URI is shown, redacted
        for secret in (PASSWORD, SECRET_KEY, ACCESS_KEY):
            leaks = [
                part[max(0, part.find(secret) - 300) : part.find(secret) + 50]
                for part in seen
                if secret in part
            ]
            assert not leaks, (secret, leaks)
