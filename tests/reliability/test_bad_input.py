"""A corpus of hostile and malformed inputs, each refused with the exact error type and
a message naming the problem, with nothing stored changed (row counts of every umlaut
table, registered digests, and every stored object's sha256 compared before/after).

Runs on SQLite + a folder and on PostgreSQL + S3 (moto over HTTP). A few entries are
*accepted* on purpose (SQL metacharacters and huge keys inside valid values): they
must be stored verbatim, add exactly one record, and leave everything else intact.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import pickle
import re
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from umlaut_core import Umlaut
from umlaut_core.exceptions import (
    ArtifactError,
    BackendError,
    BackendNotFoundError,
    ConfigurationError,
    EncodingError,
    InputEncodingError,
    IntegrityError,
    InvalidNameError,
    ModelNotFoundError,
    PackingError,
    SchemaError,
    StageNotFoundError,
    UnsupportedModelError,
    VersionNotFoundError,
)
from umlaut_core.packer._bundle import compute_digest
from umlaut_core.records import BUNDLE_SHA256_TAG
from umlaut_core.testing.models import Echo, Threshold

SIGNING_KEY = "reliability-signing-key-0123456789abcdef"
SQL = "x'; DROP TABLE umlaut_runs; --"
SQL2 = 'Robert"); DELETE FROM umlaut_versions WHERE ("1"="1'


@dataclass
class Ctx:
    """What a corpus entry works with: a registry holding model ``target`` v1 and v2
    (signed bundles, alias Production → 1, two audit records) and a fresh client."""

    backend: Any
    u: Umlaut
    tmp: Path
    marker: Path

    def uri(self, version: int = 1) -> str:
        return self.u.get_version("target", version=version).artifact_uri

    def signed(self) -> Umlaut:
        return self.backend.open(delivery="sync", signing_key=SIGNING_KEY)


@dataclass
class Case:
    id: str
    action: Callable[[Ctx], Any]
    error: type[Exception] | None
    match: str = ""
    setup: Callable[[Ctx], Any] | None = None
    only: str | None = None  # "sqlite" or "postgres"
    accepted: Callable[[Ctx, Any], None] | None = None
    added_runs: int = 0


# -- helpers for stored-data entries ----------------------------------------------------


def _deep(n: int) -> Any:
    value: Any = 0
    for _ in range(n):
        value = [value]
    return value


def _cyclic_dict() -> Any:
    d: dict[str, Any] = {"a": 1}
    d["self"] = d
    return d


def _cyclic_list() -> Any:
    items: list[Any] = [1]
    items.append([items])
    return items


def _tamper(
    transform: Callable[[bytes], bytes], sha_metadata: str = "fresh"
) -> Callable[[Ctx], None]:
    def setup(ctx: Ctx) -> None:
        uri = ctx.uri(1)
        ctx.backend.write_object(
            uri, transform(ctx.backend.read_object(uri)), sha_metadata=sha_metadata
        )

    return setup


def _flip(data: bytes) -> bytes:
    mid = len(data) // 2
    return data[:mid] + bytes([data[mid] ^ 0x10]) + data[mid + 1 :]


def _crafted_zip(manifest: dict[str, Any], payload: bytes) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("MANIFEST.json", json.dumps(manifest))
        zf.writestr("payload.pkl", payload)
    return buf.getvalue()


class _Evil:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> Any:
        return (os.system, (f"touch {self.marker}",))


def _malicious(ctx: Ctx) -> tuple[bytes, dict[str, Any]]:
    """A bundle whose payload runs a shell command when unpickled, with a manifest
    made consistent with it (payload sha256 and digest recomputed)."""
    payload = pickle.dumps(_Evil(str(ctx.marker)))
    manifest = dict(ctx.u.get_version("target", version=1).manifest)
    manifest["payload_sha256"] = hashlib.sha256(payload).hexdigest()
    manifest["digest"] = compute_digest(manifest)
    return _crafted_zip(manifest, payload), manifest


def _swap_in_malicious(ctx: Ctx) -> None:
    data, _ = _malicious(ctx)
    ctx.backend.write_object(ctx.uri(1), data)


def _swap_in_malicious_and_register(ctx: Ctx) -> None:
    # An attacker who can write both the store and the database: only a signing key
    # stops this one (README threat model).
    # It rewrites the registered digest and the whole-file checksum to match.
    data, manifest = _malicious(ctx)
    ctx.backend.write_object(ctx.uri(1), data)
    where = "WHERE name = 'target' AND version = 1"
    tags = json.loads(ctx.backend.sql(f"SELECT tags FROM umlaut_versions {where}")[0][0])
    tags[BUNDLE_SHA256_TAG] = hashlib.sha256(data).hexdigest()
    ctx.backend.execute(
        f"UPDATE umlaut_versions SET digest = :d, tags = :t {where}",
        d=manifest["digest"],
        t=json.dumps(tags),
    )


def _point_outside(ctx: Ctx) -> None:
    outside = "file:///etc/passwd" if ctx.backend.s3 is None else "s3://someone-else/secret.zip"
    ctx.backend.execute(
        "UPDATE umlaut_versions SET artifact_uri = :u WHERE name = 'target' AND version = 1",
        u=outside,
    )


def _future_schema(ctx: Ctx) -> None:
    ctx.backend.execute("INSERT INTO umlaut_schema VALUES (99, '2099-01-01T00:00:00.000000+00:00')")


def _foreign_database(ctx: Ctx) -> str:
    url = ctx.backend.other_database(ctx.tmp)
    import sqlalchemy as sa

    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE umlaut_customers (id INTEGER PRIMARY KEY)")
        conn.exec_driver_sql("INSERT INTO umlaut_customers VALUES (1)")
    engine.dispose()
    return url


def _not_a_database(ctx: Ctx) -> Any:
    path = ctx.tmp / "junk.db"
    path.write_bytes(b"\x00garbage, not SQLite\xff" * 100)
    before = path.read_bytes()
    try:
        Umlaut(f"sqlite:///{path}", str(ctx.tmp / "junk-artifacts"))
    finally:
        assert path.read_bytes() == before  # refused without writing to it


def _open_foreign(ctx: Ctx) -> Any:
    url = _foreign_database(ctx)
    try:
        Umlaut(url, str(ctx.tmp / "foreign-artifacts"))
    finally:
        import sqlalchemy as sa

        engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
        with engine.connect() as conn:
            names = sa.inspect(conn).get_table_names()
        engine.dispose()
        assert names == ["umlaut_customers"]  # nothing created next to it


def _history_injection(ctx: Ctx, result: Any) -> None:
    assert result == []


def _stored_verbatim(key: str) -> Callable[[Ctx, Any], None]:
    def check(ctx: Ctx, result: Any) -> None:
        (record,) = ctx.u.history("target", reference_id="corpus", limit=5)
        assert key in record.inputs and record.inputs[key] == 1
        assert record.output == record.inputs

    return check


def _unpicklable() -> Any:
    import threading

    model = Echo()
    model.lock = threading.Lock()  # type: ignore[attr-defined]
    return model


def _s3_store(ctx: Ctx, uri: str, **options: Any) -> Umlaut:
    opts = {**ctx.backend.artifact_options, **options}
    return Umlaut(ctx.backend.tracking, uri, artifact_options=opts, delivery="sync")


LONG = "n" * 201
HUGE = "h" * 5_000_000

CASES = [
    # -- names, aliases, reference ids, tags: SQL metacharacters and long strings -------
    Case(
        "name-sql-drop",
        lambda c: c.u.run_model(SQL, {"x": 1}),
        ModelNotFoundError,
        r"no model named \"x'; DROP TABLE",
    ),
    Case(
        "name-sql-delete",
        lambda c: c.u.run_model(SQL2, {"x": 1}),
        ModelNotFoundError,
        "no model named",
    ),
    Case(
        "name-sql-promote",
        lambda c: c.u.promote(SQL, 1, "Production"),
        ModelNotFoundError,
        "no model named",
    ),
    Case(
        "name-201-chars",
        lambda c: c.u.track_model(Echo(), LONG),
        InvalidNameError,
        "201 characters long; the limit is 200",
    ),
    Case(
        "name-5mb",
        lambda c: c.u.run_model(HUGE, {"x": 1}),
        InvalidNameError,
        "5000000 characters long",
    ),
    Case(
        "name-not-str",
        lambda c: c.u.track_model(Echo(), 42),
        InvalidNameError,
        "must be a string, not int",
    ),  # type: ignore[arg-type]
    Case(
        "name-blank", lambda c: c.u.track_model(Echo(), "   "), InvalidNameError, "empty or blank"
    ),
    Case(
        "name-newline",
        lambda c: c.u.track_model(Echo(), "a\nb"),
        InvalidNameError,
        "control character",
    ),
    Case(
        "alias-sql",
        lambda c: c.u.run_model("target", {"x": 1}, stage=SQL),
        InvalidNameError,
        "not a valid stage name",
    ),
    Case(
        "alias-65-chars",
        lambda c: c.u.promote("target", 1, "A" * 65),
        InvalidNameError,
        "not a valid stage name",
    ),
    Case(
        "alias-reserved-latest",
        lambda c: c.u.promote("target", 1, "latest"),
        InvalidNameError,
        "reserved",
    ),
    Case(
        "alias-version-like", lambda c: c.u.promote("target", 1, "v2"), InvalidNameError, "reserved"
    ),
    Case(
        "alias-unset",
        lambda c: c.u.run_model("target", {"x": 1}, stage="Canary"),
        StageNotFoundError,
        "Stages set: 'Echo', 'Production'",
    ),
    Case(
        "version-missing",
        lambda c: c.u.promote("target", 99, "Production"),
        VersionNotFoundError,
        "Existing versions: 1, 2, 3",
    ),
    Case(
        "version-negative",
        lambda c: c.u.run_model("target", {"x": 1}, version=-1),
        InvalidNameError,
        "positive integer",
    ),
    Case(
        "version-sql",
        lambda c: c.u.run_model("target", {"x": 1}, version="1; DROP"),
        InvalidNameError,
        "positive integer",
    ),  # type: ignore[arg-type]
    Case(
        "ref-201-chars",
        lambda c: c.u.run_model("target", {"x": 1}, reference_id=LONG),
        InvalidNameError,
        "at most 200 printable",
    ),
    Case(
        "ref-nul",
        lambda c: c.u.run_model("target", {"x": 1}, reference_id="a\x00b"),
        InvalidNameError,
        "printable",
    ),
    Case(
        "ref-not-str",
        lambda c: c.u.run_model("target", {"x": 1}, reference_id=7),
        InvalidNameError,
        "must be a string",
    ),  # type: ignore[arg-type]
    Case(
        "tag-value-nul",
        lambda c: c.u.run_model("target", {"x": 1}, tags={"k": "a\x00"}),
        InvalidNameError,
        "no NUL",
    ),
    Case(
        "tag-key-long",
        lambda c: c.u.run_model("target", {"x": 1}, tags={LONG: "v"}),
        InvalidNameError,
        "tag key",
    ),
    Case(
        "history-status-sql",
        lambda c: c.u.history("target", status="ok' OR '1'='1"),
        ConfigurationError,
        "status must be 'ok' or 'error'",
    ),  # type: ignore[arg-type]
    Case(
        "history-limit-sql",
        lambda c: c.u.history("target", limit="1; DROP"),
        ConfigurationError,
        "limit must be an integer",
    ),  # type: ignore[arg-type]
    Case(
        "history-ref-injection",
        lambda c: c.u.history(reference_id="' OR '1'='1", include_pending=False),
        None,
        accepted=_history_injection,
    ),
    Case(
        "history-name-injection",
        lambda c: c.u.history("target' OR 1=1 --", include_pending=False),
        None,
        accepted=_history_injection,
    ),
    Case(
        "json-key-sql",
        lambda c: c.u.run_model("target", {SQL: 1, "x": 0}, reference_id="corpus", stage="Echo"),
        None,
        accepted=_stored_verbatim(SQL),
        added_runs=1,
    ),
    Case(
        "json-key-1mb",
        lambda c: c.u.run_model(
            "target", {"k" * 1_000_000: 1, "x": 0}, reference_id="corpus", stage="Echo"
        ),
        None,
        accepted=_stored_verbatim("k" * 1_000_000),
        added_runs=1,
    ),
    # -- path traversal in names (the folder / S3 store never sees names) ----------------
    Case(
        "name-dotdot",
        lambda c: c.u.track_model(Echo(), "../../etc/passwd"),
        InvalidNameError,
        "contains '..'",
    ),
    Case(
        "name-absolute",
        lambda c: c.u.track_model(Echo(), "/etc/passwd"),
        InvalidNameError,
        "starts with a path separator",
    ),
    Case(
        "name-windows-drive",
        lambda c: c.u.track_model(Echo(), "C:\\Windows\\x"),
        InvalidNameError,
        "path separator",
    ),
    Case(
        "name-backslash-dotdot",
        lambda c: c.u.track_model(Echo(), "..\\..\\boot.ini"),
        InvalidNameError,
        "'..'",
    ),
    Case(
        "name-nul",
        lambda c: c.u.track_model(Echo(), "evil\x00.zip"),
        InvalidNameError,
        "control character",
    ),
    Case(
        "store-key-dotdot",
        lambda c: c.u.artifact_store.put("../escape.zip", b"x"),
        ArtifactError,
        "escape.zip",
    ),
    Case(
        "store-key-absolute",
        lambda c: c.u.artifact_store.put("/tmp/abs.zip", b"x"),
        ArtifactError,
        "abs.zip",
    ),
    Case(
        "store-key-nul",
        lambda c: c.u.artifact_store.put("bundles/a\x00b.zip", b"x"),
        ArtifactError,
        "refused",
    ),
    Case(
        "store-get-outside",
        lambda c: c.u.artifact_store.get(
            "file:///etc/passwd" if c.backend.s3 is None else "s3://other-bucket/x.zip"
        ),
        ArtifactError,
        "outside|not in this store's bucket",
    ),
    # -- inputs that are not JSON -----------------------------------------------------------
    Case(
        "input-nan",
        lambda c: c.u.run_model("target", {"x": math.nan}),
        InputEncodingError,
        r"nan at \$\.x",
    ),
    Case(
        "input-inf",
        lambda c: c.u.run_model("target", {"x": math.inf}),
        InputEncodingError,
        r"inf at \$\.x",
    ),
    Case(
        "input-neg-inf-nested",
        lambda c: c.u.run_model("target", {"x": 1, "v": [1, [-math.inf]]}),
        InputEncodingError,
        r"-inf at \$\.v\[1\]\[0\]",
    ),
    Case(
        "input-decimal-nan",
        lambda c: c.u.run_model("target", {"x": Decimal("NaN")}),
        InputEncodingError,
        "no JSON form",
    ),
    Case(
        "input-deep",
        lambda c: c.u.run_model("target", {"x": _deep(10_000)}),
        InputEncodingError,
        "nesting deeper than 100",
    ),
    Case(
        "input-cyclic-dict",
        lambda c: c.u.run_model("target", _cyclic_dict()),
        InputEncodingError,
        "cycle",
    ),
    Case(
        "input-cyclic-list",
        lambda c: c.u.run_model("target", {"x": _cyclic_list()}),
        InputEncodingError,
        "cycle",
    ),
    Case(
        "input-bytes",
        lambda c: c.u.run_model("target", {"x": b"\xff\xfe\x00"}),
        InputEncodingError,
        "bytes at",
    ),
    Case(
        "input-lone-surrogate",
        lambda c: c.u.run_model("target", {"x": b"caf\xe9".decode("utf-8", "surrogateescape")}),
        InputEncodingError,
        "lone surrogate",
    ),
    Case("input-int-key", lambda c: c.u.run_model("target", {1: 2}), InputEncodingError, "key 1"),
    Case(
        "input-huge-then-nan",
        lambda c: c.u.run_model("target", {"x": 1, "big": ["y" * 1000] * 20_000, "z": math.nan}),
        InputEncodingError,
        r"nan at \$\.z",
    ),
    Case(
        "batch-one-bad-item",
        lambda c: c.u.run_batch("target", [{"x": 1}, {"x": 2}, {"x": 3}, {"x": math.nan}]),
        InputEncodingError,
        "batch item 3",
    ),
    Case(
        "batch-refs-mismatch",
        lambda c: c.u.run_batch("target", [{"x": 1}], reference_ids=["a", "b"]),
        ConfigurationError,
        "2 entries for 1 inputs",
    ),
    Case(
        "params-nan",
        lambda c: c.u.track_model(Echo("p"), "new", params={"a": math.nan}),
        EncodingError,
        "params cannot be stored",
    ),
    Case(
        "metrics-inf",
        lambda c: c.u.track_model(Echo("m"), "new", metrics={"a": math.inf}),
        EncodingError,
        "must be finite",
    ),
    Case(
        "metrics-text",
        lambda c: c.u.track_model(Echo("m"), "new", metrics={"a": "high"}),
        EncodingError,
        "must be a number",
    ),  # type: ignore[dict-item]
    Case(
        "model-unsupported",
        lambda c: c.u.track_model(42, "new"),
        UnsupportedModelError,
        "cannot track a int",
    ),
    Case(
        "model-unpicklable",
        lambda c: c.u.track_model(_unpicklable(), "new"),
        PackingError,
        "cannot pickle",
    ),
    # -- stored data: truncated, bit-flipped, swapped, forged bundles -------------------------
    Case(
        "bundle-truncated",
        lambda c: c.u.run_model("target", {"x": 1}, version=1),
        IntegrityError,
        "changed since it was registered",
        setup=_tamper(lambda d: d[: len(d) // 2]),
    ),
    Case(
        "bundle-bit-flipped",
        lambda c: c.u.run_model("target", {"x": 1}, version=1),
        IntegrityError,
        "changed since it was registered|changed or damaged",
        setup=_tamper(_flip, sha_metadata="keep"),
    ),
    Case(
        "bundle-rewritten-without-checksum",
        lambda c: c.u.run_model("target", {"x": 1}, version=1),
        IntegrityError,
        "has no x-amz-meta-sha256 checksum",
        setup=_tamper(lambda d: d[:-1] + bytes([d[-1] ^ 1]), sha_metadata="none"),
        only="postgres",  # the S3 store's own check, before the whole-file one
    ),
    Case(
        "bundle-swapped",
        lambda c: c.u.run_model("target", {"x": 1}, version=1),
        IntegrityError,
        "changed since it was registered",
        setup=lambda c: c.backend.write_object(c.uri(1), c.backend.read_object(c.uri(2))),
    ),
    Case(
        "bundle-not-zip",
        lambda c: c.u.run_model("target", {"x": 1}, version=1),
        IntegrityError,
        "changed since it was registered",
        setup=_tamper(lambda d: b"GARBAGE"),
    ),
    Case(
        "bundle-deleted",
        lambda c: c.u.run_model("target", {"x": 1}, version=1),
        ArtifactError,
        "missing",
        setup=lambda c: c.backend.delete_object(c.uri(1)),
    ),
    Case(
        "bundle-future-format",
        lambda c: c.u.run_model("target", {"x": 1}, version=1),
        IntegrityError,
        "changed since it was registered",
        setup=_tamper(lambda d: _crafted_zip({"format": 99}, b"")),
    ),
    Case(
        "bundle-malicious-pickle",
        lambda c: c.u.run_model("target", {"x": 1}, version=1),
        IntegrityError,
        "changed since it was registered",
        setup=_swap_in_malicious,
    ),
    Case(
        "bundle-malicious-registered",
        lambda c: c.signed().run_model("target", {"x": 1}, version=1),
        IntegrityError,
        "not signed",
        setup=_swap_in_malicious_and_register,
    ),
    Case(
        "version-points-outside",
        lambda c: c.u.run_model("target", {"x": 1}, version=1),
        ArtifactError,
        "outside|not in this store's bucket",
        setup=_point_outside,
    ),
    # -- databases and URIs ----------------------------------------------------------------------
    Case(
        "database-future-schema",
        lambda c: c.backend.open(),
        SchemaError,
        "schema version 99, newer than",
        setup=_future_schema,
    ),
    Case("database-foreign", _open_foreign, SchemaError, "not an umlaut database"),
    Case(
        "database-not-sqlite",
        _not_a_database,
        SchemaError,
        "is not a SQLite database",
        only="sqlite",
    ),
    Case(
        "uri-unknown-scheme",
        lambda c: Umlaut("nosuch://x", str(c.tmp / "a")),
        BackendNotFoundError,
        "'nosuch'.*Installed tracker schemes",
    ),
    Case(
        "uri-mysql",
        lambda c: Umlaut("mysql://u@h/db", str(c.tmp / "a")),
        BackendNotFoundError,
        r"'mysql'\. Installed tracker schemes",
    ),
    Case("uri-blank", lambda c: Umlaut("   ", str(c.tmp / "a")), ConfigurationError, "empty URI"),
    Case(
        "uri-nul",
        lambda c: Umlaut("sqlite:///a\x00b.db", str(c.tmp / "a")),
        ConfigurationError,
        "NUL",
    ),
    Case(
        "uri-file-remote-host",
        lambda c: Umlaut(c.backend.tracking, "file://evil.example.com/x"),
        ConfigurationError,
        "names a remote host",
    ),
    Case(
        "uri-unknown-option",
        lambda c: Umlaut(c.backend.tracking, str(c.tmp / "a"), tracker_options={"evil": 1}),
        ConfigurationError,
        "unknown tracker option",
    ),
    Case(
        "uri-postgres-unreachable",
        lambda c: Umlaut("postgresql+psycopg://u:pw@127.0.0.1:1/db", str(c.tmp / "a")),
        BackendError,
        r"127\.0\.0\.1:1.*server is running",
    ),
    Case(
        "uri-postgres-no-database",
        lambda c: Umlaut(c.backend.tracking.rsplit("/", 1)[0] + "/no_such_db", str(c.tmp / "a")),
        BackendError,
        "no_such_db",
        only="postgres",
    ),
    Case(
        "uri-folder-under-a-file",
        lambda c: Umlaut(c.backend.tracking, str(c.tmp / "afile" / "sub")).track_model(
            Echo("f"), "new"
        ),
        ArtifactError,
        "cannot write",
        only="sqlite",
        setup=lambda c: (c.tmp / "afile").write_text("x"),
    ),
    Case(
        "uri-s3-missing-bucket",
        lambda c: _s3_store(c, "s3://no-such-bucket-rel/x").track_model(Echo("s"), "new"),
        BackendError,
        "bucket 'no-such-bucket-rel' does not exist",
        only="postgres",
    ),
    Case(
        "uri-s3-bad-bucket-name",
        lambda c: _s3_store(c, "s3://Bad_Bucket!/x"),
        ConfigurationError,
        "Bad_Bucket",
        only="postgres",
    ),
    Case(
        "uri-s3-unreachable",
        lambda c: _s3_store(
            c,
            "s3://b-unreachable/x",
            endpoint_url="http://127.0.0.1:1",
            max_attempts=1,
            connect_timeout=1,
        ).track_model(Echo("u"), "new"),
        BackendError,
        "unreachable",
        only="postgres",
    ),
]


@pytest.fixture
def ctx(backend: Any, tmp_path: Path) -> Any:
    setup = backend.open(delivery="sync", signing_key=SIGNING_KEY)
    setup.track_model(Threshold(1), "target", stage="Production")
    setup.track_model(Threshold(2), "target")
    setup.track_model(Echo(), "target", stage="Echo")  # v3, for accepted inputs
    setup.run_model("target", {"x": 2}, stage="Production")
    setup.run_model("target", {"x": 0}, version=2, reference_id="r")
    setup.close()
    u = backend.open(delivery="sync")
    yield Ctx(backend, u, tmp_path, tmp_path / "PWNED")
    u.close()


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
class TestHostileInput:
    """Each hostile input: the exact error, a message naming it, nothing stored changed."""

    def test_refused_and_nothing_changed(self, ctx: Ctx, case: Case) -> None:
        if case.only and case.only != ctx.backend.name:
            pytest.skip(f"{case.id} concerns {case.only} only")
        if case.setup is not None:
            case.setup(ctx)
        counts, digests, objects = ctx.backend.snapshot()
        if case.error is None:
            result = case.action(ctx)
            assert case.accepted is not None
            case.accepted(ctx, result)
        else:
            with pytest.raises(Exception) as info:  # the exact type is checked below
                case.action(ctx)
            assert type(info.value) is case.error, repr(info.value)
            assert re.search(case.match, str(info.value)), str(info.value)
        after_counts, after_digests, after_objects = ctx.backend.snapshot()
        counts["umlaut_runs"] += case.added_runs
        assert after_counts == counts
        assert after_digests == digests
        assert after_objects == objects
        assert not ctx.marker.exists(), "a forged bundle's payload ran"
        # And the registry still works after the attempt.
        if case.setup is None:
            assert ctx.u.run_model("target", {"x": 2}, stage="Production")["above"] is True


def test_corpus_size() -> None:
    """The corpus holds at least 40 hostile inputs on each backend."""
    assert sum(c.only != "postgres" for c in CASES) >= 40
    assert sum(c.only != "sqlite" for c in CASES) >= 40
