"""``redact``: every form the drivers accept loses its credentials, and nothing else;
the spool keeps only the redacted tracker URI."""

from __future__ import annotations

import random
import sqlite3
import string
from pathlib import Path

import pytest

from umlaut_core import Umlaut
from umlaut_core.exceptions import BackendError
from umlaut_core.registry import looks_secret, redact
from umlaut_core.spool import Spool
from umlaut_core.stores.memory import MemoryTracker

#: (given, expected): forms the previous regex leaked. Over-masking is allowed where
#: the text is ambiguous; leaking is not.
CASES = [
    # user-info, any character in the password (issue #12, family 2)
    ("postgresql+psycopg://u:Zm9v/YmFy+cXV4@db/x", "postgresql+psycopg://u:***@db/x"),
    ("postgresql://u:p@ss#w?rd@db/x", "postgresql://u:***@db/x"),
    ("postgresql://u:a@b/c@db/x", "postgresql://u:***@db/x"),
    # over http(s), user-info without a colon is a token
    ("mlflow+https://ghp_token@mlflow.example", "mlflow+https://***@mlflow.example"),
    # no "//": bare user-info after a "+" scheme, or alone
    ("mlflow+user:pass@host:5000", "mlflow+user:***@host:5000"),
    ("user:p/a#s?s@host", "user:***@host"),
    # credentials in the query string, in any position
    ("postgresql://db/x?password=s3cret", "postgresql://db/x?password=***"),
    (
        "postgresql://db/x?sslmode=require&sslpassword=k&application_name=a",
        "postgresql://db/x?sslmode=require&sslpassword=***&application_name=a",
    ),
    ("postgresql://db/x?passwd=a/b#c&pwd=d", "postgresql://db/x?passwd=***&pwd=***"),
    (
        "https://h/x?secret=1&token=2&access_key=3&aws_secret_access_key=4&api_key=5",
        "https://h/x?secret=***&token=***&access_key=***&aws_secret_access_key=***&api_key=***",
    ),
    ("postgresql://db/x?pass%77ord=s3cret", "postgresql://db/x?pass%77ord=***"),
    # a URI inside a query value, encoded or not
    (
        "s3://b/p?endpoint_url=http://u:pw%40host:9000",
        "s3://b/p?endpoint_url=http://u:***@host:9000",
    ),
    ("s3://b/p?endpoint_url=http%3A%2F%2Fu%3Apw%40h", "s3://b/p?endpoint_url=http://u:***@h"),
    # libpq key=value DSNs
    ("host=db password=s3cret dbname=x", "host=db password=*** dbname=x"),
    ("host=db password='a b' dbname=x", "host=db password=*** dbname=x"),
    ("host=db password = 'it\\'s \\\\ x' dbname=x", "host=db password = *** dbname=x"),
    ("host=db password=a\\ b dbname=x", "host=db password=*** dbname=x"),
    ("sslpassword=k host=db", "sslpassword=*** host=db"),
    # text with URIs in it (error messages, log lines)
    (
        "BackendError: opening failed on postgresql://u:Zm9v/YmFy+cXV4@db/x: refused",
        "BackendError: opening failed on postgresql://u:***@db/x: refused",
    ),
    ("{'password': 'abc', 'host': 'db'}", "{'password': '***', 'host': 'db'}"),
]
#: Forms the previous regex already handled, and text with nothing secret in it.
KEPT = [
    ("postgresql://u:pw@db:5432/x", "postgresql://u:***@db:5432/x"),
    ("postgresql://u:a:b+c@db/x", "postgresql://u:***@db/x"),
    ("postgresql://u:p%40ss%2Fw%23@db/x", "postgresql://u:***@db/x"),
    ("postgresql://:pw@db/x", "postgresql://:***@db/x"),
    ("postgresql://u:pw@[::1]:5432/x", "postgresql://u:***@[::1]:5432/x"),
    ("memory://user:hunter2@somewhere/x", "memory://user:***@somewhere/x"),
    ("postgresql://postgres@db/x", "postgresql://postgres@db/x"),
    ("mlflow+https://user:token@mlflow.example/", "mlflow+https://user:***@mlflow.example/"),
    ("cannot read 'postgresql://u:a b@db/x' now", "cannot read 'postgresql://u:***@db/x' now"),
    ("sqlite:///.umlaut/umlaut.db", "sqlite:///.umlaut/umlaut.db"),
    ("sqlite:////srv/a:b@c.db", "sqlite:////srv/a:b@c.db"),
    ("file:models@v2/x", "file:models@v2/x"),
    ("./models@v2", "./models@v2"),
    ("s3://bucket/prefix?region_name=eu-west-1", "s3://bucket/prefix?region_name=eu-west-1"),
    ("memory:", "memory:"),
    ("postgresql://[::1]:5432/x", "postgresql://[::1]:5432/x"),
    ("", ""),
]


class TestRedactTable:
    """Each recognised form loses its secret and keeps what can be told apart from it."""

    @pytest.mark.parametrize(("given", "expected"), CASES, ids=[c[0] for c in CASES])
    def test_form(self, given: str, expected: str) -> None:
        assert redact(given) == expected

    def test_whole_table_is_idempotent_and_keeps_what_is_not_secret(self) -> None:
        for given, expected in [*CASES, *KEPT]:
            assert redact(given) == expected, given
            assert redact(expected) == expected, given

    def test_at_in_a_query_value_over_masks_rather_than_guessing(self) -> None:
        # SQLAlchemy itself reads everything up to that "@" as the password.
        shown = redact("postgresql://db:5432/x?application_name=me@laptop")
        assert "5432" not in shown and shown.endswith("@laptop")


class TestRedactNeverLeaks:
    """Random passwords in every form never survive, and redact never raises."""

    ALPHABET = string.ascii_letters + string.digits + "@:/#?+%&=!$'()*,;[]~._-"

    def _password(self, rng: random.Random) -> str:
        body = "".join(rng.choice(self.ALPHABET) for _ in range(rng.randint(4, 16)))
        return f"Q{body}Z"

    def test_random_passwords_and_noise(self) -> None:
        rng = random.Random(12)
        for _ in range(3000):
            pw = self._password(rng)
            quoted = pw.replace("\\", "\\\\").replace("'", "\\'")
            forms = [
                f"postgresql+psycopg://user:{pw}@db.example:5432/umlaut",
                f"mlflow+https://user:{pw}@mlflow.example",
                f"mlflow+user:{pw}@mlflow.example",
                f"host=db.example password='{quoted}' dbname=umlaut",
                f"failed on postgresql://user:{pw}@db.example/umlaut: refused",
            ]
            if "&" not in pw:  # "&" ends a query value for every parser
                forms.append(f"postgresql://db.example/umlaut?password={pw}&sslmode=require")
            for form in forms:
                shown = redact(form)
                assert pw[1:-1] not in shown, (form, shown)
                assert "db.example" in shown or "mlflow.example" in shown, (form, shown)
                assert redact(shown) == shown
        alphabet = string.printable + "@:/#?+%&='\"\\é\x00"
        heads = ["", "postgresql://", "mlflow+https://", "host=", "sqlite:///", "u:", "x 'pwd': "]
        for _ in range(5000):  # noise: never raises, always idempotent
            text = rng.choice(heads) + "".join(
                rng.choice(alphabet) for _ in range(rng.randint(0, 40))
            )
            shown = redact(text)
            assert isinstance(shown, str) and redact(shown) == shown, text

    def test_not_a_string(self) -> None:
        assert redact(None) == "None"  # type: ignore[arg-type]


class TestLooksSecret:
    """Option and query names that hold credentials, as Settings and redact read them."""

    def test_names(self) -> None:
        secret = ["password", "passwd", "pwd", "sslpassword", "secret", "token", "access_key",
                  "aws_secret_access_key", "api_key", "aws_session_token", "X-Amz-Signature",
                  "pass%77ord"]  # fmt: skip
        plain = ["host", "dbname", "sslmode", "region_name", "busy_timeout"]
        assert [n for n in secret if not looks_secret(n)] == []
        assert [n for n in plain if looks_secret(n)] == []


def _file_bytes(db: Path) -> bytes:
    """The spool file and whatever SQLite keeps beside it."""
    found = b""
    for suffix in ("", "-wal", "-shm", "-journal"):
        path = Path(f"{db}{suffix}")
        if path.exists():
            found += path.read_bytes()
    return found


class TestSpoolKeepsNoSecret:
    """The spool file holds the redacted tracker URI; a rotated password finds it again."""

    URI = "memory://ada:Zm9v/YmFy+cXV4@db.internal/umlaut?token=t0k3n-Secret"
    SECRETS = (b"Zm9v", b"YmFy", b"cXV4", b"t0k3n")

    def test_meta_is_redacted(self, tmp_path: Path) -> None:
        spool = Spool(tmp_path / "s.db", tracker_uri=self.URI)
        assert spool.tracker_uri == redact(self.URI)
        spool.close()
        data = _file_bytes(tmp_path / "s.db")
        assert b"db.internal/umlaut" in data
        assert not [s for s in self.SECRETS if s in data]

    def test_a_rotated_password_opens_the_same_spool(self, tmp_path: Path) -> None:
        Spool(tmp_path / "s.db", tracker_uri=self.URI).close()
        rotated = self.URI.replace("Zm9v/YmFy+cXV4", "n3w@pass#word")
        Spool(tmp_path / "s.db", tracker_uri=rotated).close()
        with pytest.raises(BackendError, match="holds records for"):
            Spool(tmp_path / "s.db", tracker_uri=rotated.replace("ada:", "bob:"))

    def test_a_spool_from_the_previous_release_opens_and_is_scrubbed(self, tmp_path: Path) -> None:
        db = tmp_path / "old.db"
        with sqlite3.connect(db) as conn:  # as 0.x wrote it: the full URI in spool_meta
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("CREATE TABLE spool_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            conn.execute("INSERT INTO spool_meta VALUES ('tracker', ?)", (self.URI,))
        conn.close()
        assert b"Zm9v" in _file_bytes(db)
        spool = Spool(db, tracker_uri=self.URI)
        assert spool.status().depth == 0
        spool.close()
        assert not [s for s in self.SECRETS if s in _file_bytes(db)]

    def test_default_spool_path_ignores_the_password(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("UMLAUT_HOME", str(tmp_path))
        paths = []
        for password in ("Zm9v/YmFy+cXV4", "n3w@pass#word"):
            tracker = MemoryTracker(f"memory://ada:{password}@db.internal/umlaut")
            with Umlaut(tracker=tracker, delivery="spooled") as um:
                paths.append(um.pending().path)
        assert paths[0] == paths[1]
        other = MemoryTracker("memory://ada:x@other.internal/umlaut")
        with Umlaut(tracker=other, delivery="spooled") as um:
            assert um.pending().path != paths[0]
        assert not [s for s in self.SECRETS if s in _file_bytes(Path(paths[0]))]
