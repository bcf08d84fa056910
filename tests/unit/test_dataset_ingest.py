"""Tracking a dataset's data: input forms, round trips, profiles, streaming, the
facade end to end."""

from __future__ import annotations

import dataclasses
import datetime as dt
import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

np = pytest.importorskip("numpy")
pd = pytest.importorskip("pandas")
pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

from umlaut_core import Umlaut  # noqa: E402
from umlaut_core.datasets import sources  # noqa: E402
from umlaut_core.datasets.ingest import Ingested, dataset_digest, ingest, read_frame  # noqa: E402
from umlaut_core.datasets.records import DatasetVersion  # noqa: E402
from umlaut_core.datasets.report import profile_table  # noqa: E402
from umlaut_core.exceptions import ConfigurationError, IntegrityError  # noqa: E402


def _ingest(data: Any, tmp_path: Path, **kw: Any) -> Ingested:
    workdir = tmp_path / f"w{len(list(tmp_path.iterdir()))}"
    workdir.mkdir()
    return ingest(data, workdir=workdir, **kw)


def _version(got: Ingested) -> DatasetVersion:
    return DatasetVersion(
        name="d", version=1, digest=got.digest, rows=got.rows, columns=got.columns,
        artifact_uri="", size_bytes=got.size_bytes, sha256=got.sha256,
        created_at=dt.datetime.now(dt.UTC),
    )  # fmt: skip


def _round_trip(data: Any, tmp_path: Path) -> Any:
    got = _ingest(data, tmp_path)
    return read_frame(got.path.read_bytes(), _version(got))


class TestInputForms:
    """Every accepted form is read; anything else is refused with what is accepted."""

    def test_each_form(self, tmp_path: Path) -> None:
        frame = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})
        csv = tmp_path / "in.csv"
        frame.to_csv(csv, index=False)
        parquet = tmp_path / "in.parquet"
        frame.to_parquet(parquet)
        forms = {
            "pandas.DataFrame": frame,
            "pyarrow.Table": pa.table({"a": [1, 2], "b": ["x", "y"]}),
            "list of 2 dicts": [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}],
            str(csv): csv,
            str(parquet): str(parquet),
        }
        results = {label: _ingest(data, tmp_path) for label, data in forms.items()}
        assert {r.source for r in results.values()} == set(forms)
        assert len({r.digest for r in results.values()}) == 1
        for got in results.values():
            assert got.rows == 2
            assert got.path.parent.parent == tmp_path
            assert got.size_bytes == got.path.stat().st_size
            assert pq.read_table(got.path).num_rows == 2

    @pytest.mark.parametrize("data", [{"a": [1]}, 42, b"a,b\n1,2\n", pd.Series([1, 2]), (1, 2)])
    def test_other_inputs_are_refused(self, data: Any, tmp_path: Path) -> None:
        with pytest.raises(ConfigurationError, match="a pandas DataFrame, a pyarrow Table"):
            _ingest(data, tmp_path)

    def test_a_list_of_other_things(self, tmp_path: Path) -> None:
        with pytest.raises(ConfigurationError, match="item 1 is int"):
            _ingest([{"a": 1}, 2], tmp_path)
        with pytest.raises(ConfigurationError, match="empty list"):
            _ingest([], tmp_path)

    def test_keys_missing_from_some_rows_are_nulls(self, tmp_path: Path) -> None:
        got = _ingest([{"a": 1}, {"b": "x"}, {"a": 3, "b": "y"}], tmp_path)
        assert [c.name for c in got.columns] == ["a", "b"]
        assert [c.null_count for c in got.columns] == [1, 1]

    @pytest.mark.parametrize(
        ("columns", "message"),
        [
            ([0, "b"], "must be strings; 0 is int"),
            (["", "b"], "empty name"),
            (["a", "a"], "'a' appears twice"),
            ([("a", 1), ("b", 2)], "must be strings"),
        ],
    )
    def test_column_names(self, columns: list[Any], message: str, tmp_path: Path) -> None:
        frame = pd.DataFrame([[1, 2]], columns=pd.Index(columns, tupleize_cols=True))
        with pytest.raises(ConfigurationError, match=message):
            _ingest(frame, tmp_path)

    def test_no_columns(self, tmp_path: Path) -> None:
        with pytest.raises(ConfigurationError, match="no columns"):
            _ingest(pd.DataFrame(index=[1, 2]), tmp_path)

    def test_a_column_of_mixed_types_is_named_without_its_values(self, tmp_path: Path) -> None:
        frame = pd.DataFrame({"ok": [1, 2], "mixed": pd.Series([1, "secret-value"], dtype=object)})
        with pytest.raises(ConfigurationError, match=r"column 'mixed'.*int, str") as caught:
            _ingest(frame, tmp_path)
        assert "secret-value" not in str(caught.value)
        with pytest.raises(ConfigurationError, match="key 'v' holds values of types int, str"):
            _ingest([{"v": 1}, {"v": "secret-value"}], tmp_path)

    def test_paths(self, tmp_path: Path) -> None:
        with pytest.raises(ConfigurationError, match="no file at"):
            _ingest(tmp_path / "missing.csv", tmp_path)
        other = tmp_path / "data.txt"
        other.write_text("a,b\n")
        with pytest.raises(ConfigurationError, match="neither CSV"):
            _ingest(other, tmp_path)
        sniffed = tmp_path / "data.bin"
        pq.write_table(pa.table({"a": [1]}), sniffed)
        assert _ingest(sniffed, tmp_path).rows == 1

    def test_compressed_and_tab_separated_csv(self, tmp_path: Path) -> None:
        frame = pd.DataFrame({"a": [1, 2], "b": [0.5, 1.5]})
        gz = tmp_path / "in.csv.gz"
        frame.to_csv(gz, index=False)
        tsv = tmp_path / "in.tsv"
        frame.to_csv(tsv, index=False, sep="\t")
        assert dataset_digest(gz) == dataset_digest(tsv) == dataset_digest(frame)

    def test_a_csv_type_that_later_blocks_refuse_is_widened(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(sources, "CSV_BLOCK_BYTES", 64)
        rows = [f"{i},{i},,{'true' if i % 2 else 'false'}" for i in range(40)]
        rows += ["40,40.5,7,maybe", "41,x,8.5,true"]
        csv = tmp_path / "drift.csv"
        csv.write_text("id,v,late,flag\n" + "\n".join(rows) + "\n")
        got = _ingest(csv, tmp_path)
        types = {c.name: c.stored_type for c in got.columns}
        assert types == {"id": "int64", "v": "string", "late": "double", "flag": "string"}
        assert got.rows == 42
        assert dataset_digest(csv) == got.digest


class TestRoles:
    """target and roles name columns; every other column is a feature."""

    def test_roles(self, tmp_path: Path) -> None:
        frame = pd.DataFrame({"id": [1], "x": [0.5], "w": [2.0], "y": [1]})
        got = _ingest(frame, tmp_path, target="y", roles={"id": "id", "w": "weight"})
        assert [c.role for c in got.columns] == ["id", "feature", "weight", "target"]

    @pytest.mark.parametrize(
        ("kw", "message"),
        [
            ({"target": "why"}, "target names 'why', not a column"),
            ({"roles": {"Id": "id"}}, "did you mean 'id'"),
            ({"roles": {"id": ""}}, "non-empty text"),
            ({"roles": {"x": "target"}}, "target='x'"),
            ({"roles": ["id"]}, "must map column names"),
            ({"target": "x", "roles": {"x": "id"}}, "is the target and has a role"),
        ],
    )
    def test_bad_roles(self, kw: dict[str, Any], message: str, tmp_path: Path) -> None:
        with pytest.raises(ConfigurationError, match=message):
            _ingest(pd.DataFrame({"id": [1], "x": [0.5]}), tmp_path, **kw)


_ROUND_TRIPS = {
    "ints with nulls": pd.array([1, None, -3], dtype="Int64"),
    "small ints": np.array([1, 2, 3], dtype="int8"),
    "unsigned": np.array([1, 2, 2**64 - 1], dtype="uint64"),
    "bools": [True, False, True],
    "bools with nulls": pd.array([True, None, False], dtype="boolean"),
    "floats with NaN": [1.5, np.nan, -0.0],
    "float32": np.array([1.5, np.nan, 3.25], dtype="float32"),
    "str": pd.Series(["a", None, "ü"], dtype="str"),
    "string": pd.array(["a", None, "ü"], dtype="string"),
    "object strings": pd.Series(["a", None, "ü"], dtype=object),
    "categories": pd.Categorical(["x", "y", "x"], categories=["y", "x", "unused"]),
    "ordered categories": pd.Categorical(["lo", "hi", None], categories=["lo", "hi"], ordered=True),
    "int categories": pd.Categorical([3, 1, 3]),
    "datetimes": pd.to_datetime(["2024-01-01 10:00", None, "1950-06-01 00:00"]).as_unit("ns"),
    "datetimes with a zone": pd.to_datetime(["2024-01-01", None, "2024-07-01"])
    .tz_localize("Europe/Berlin")
    .as_unit("us"),
    "timedeltas": pd.to_timedelta([1.5, None, -2], unit="s"),
    "dates": [dt.date(2024, 1, 1), None, dt.date(1900, 2, 28)],
}


class TestRoundTrips:
    """read_frame gives back the tracked frame, dtypes included."""

    @pytest.mark.parametrize("case", list(_ROUND_TRIPS))
    def test_frame(self, case: str, tmp_path: Path) -> None:
        frame = pd.DataFrame({"v": _ROUND_TRIPS[case], "k": [1, 2, 3]}).set_axis([9, 8, 7])
        back = _round_trip(frame, tmp_path)
        pd.testing.assert_frame_equal(back, frame.reset_index(drop=True))

    def test_every_dtype_at_once_over_many_batches(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(sources, "BATCH_ROWS", 2)
        frame = pd.DataFrame({name: values for name, values in _ROUND_TRIPS.items()})
        frame = pd.concat([frame] * 3, ignore_index=True)
        pd.testing.assert_frame_equal(_round_trip(frame, tmp_path), frame)

    def test_arrow_born_nulls_keep_ints_and_bools(self, tmp_path: Path) -> None:
        back = _round_trip([{"i": 1, "b": True}, {"i": None, "b": None}], tmp_path)
        assert str(back["i"].dtype) == "Int64"
        assert str(back["b"].dtype) == "boolean"
        assert back["i"].tolist() == [1, pd.NA]
        assert _round_trip([{"i": 1}, {"i": 2}], tmp_path)["i"].dtype == np.int64

    def test_a_row_count_that_does_not_match_is_refused(self, tmp_path: Path) -> None:
        got = _ingest(pd.DataFrame({"a": [1, 2]}), tmp_path)
        wrong = dataclasses.replace(_version(got), rows=3)
        with pytest.raises(IntegrityError, match="has 2 rows"):
            read_frame(got.path.read_bytes(), wrong)
        with pytest.raises(IntegrityError, match="not readable Parquet"):
            read_frame(b"not parquet", _version(got))

    def test_an_empty_frame(self, tmp_path: Path) -> None:
        frame = pd.DataFrame({"a": pd.Series([], dtype="int64"), "s": pd.Series([], dtype="str")})
        got = _ingest(frame, tmp_path)
        assert got.rows == 0
        assert got.columns[0].distinct_count == 0
        assert got.columns[0].quantiles == ()
        pd.testing.assert_frame_equal(read_frame(got.path.read_bytes(), _version(got)), frame)


def _profile(data: Any, tmp_path: Path, **kw: Any) -> dict[str, Any]:
    return {c.name: c for c in _ingest(data, tmp_path, **kw).columns}


class TestProfile:
    """Column statistics agree with pandas and numpy."""

    def test_numbers(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(sources, "BATCH_ROWS", 997)  # many uneven batches
        rng = np.random.default_rng(3)
        x = rng.normal(1e6, 3.0, 20_000)  # a large mean: naive variance cancels
        x[rng.integers(0, 20_000, 500)] = np.nan
        frame = pd.DataFrame({
            "x": x,
            "i": pd.array(rng.integers(-50, 50, 20_000), dtype="Int64"),
            "d": pd.to_timedelta(rng.integers(0, 10**6, 20_000), unit="ms"),
        })  # fmt: skip
        frame.loc[::7, "i"] = pd.NA
        profile = _profile(frame, tmp_path)
        for name in ("x", "i"):
            column, values = profile[name], frame[name].dropna().astype("float64")
            assert column.null_count == frame[name].isna().sum()
            assert column.nullable
            assert column.distinct_count == frame[name].nunique()
            assert column.distinct_exact
            assert column.min == values.min() and column.max == values.max()
            assert column.mean == pytest.approx(values.mean(), rel=1e-12)
            assert column.std == pytest.approx(values.std(), rel=1e-9)
            expected = np.quantile(values, np.linspace(0, 1, 11))
            assert column.quantiles == pytest.approx(expected, rel=1e-12)
        assert isinstance(profile["i"].min, int)
        seconds = frame["d"].dt.total_seconds()
        assert profile["d"].logical_type == "duration"
        assert profile["d"].mean == pytest.approx(seconds.mean())
        assert profile["d"].max == pytest.approx(seconds.max())

    def test_infinities_are_present_but_not_statistics(self, tmp_path: Path) -> None:
        column = _profile(pd.DataFrame({"x": [1.0, np.inf, -np.inf, 3.0, np.nan]}), tmp_path)["x"]
        assert (column.null_count, column.min, column.max, column.mean) == (1, 1.0, 3.0, 2.0)

    def test_booleans(self, tmp_path: Path) -> None:
        frame = pd.DataFrame({"b": pd.array([True, True, False, None, True], dtype="boolean")})
        column = _profile(frame, tmp_path)["b"]
        assert column.logical_type == "boolean"
        assert (column.null_count, column.distinct_count) == (1, 2)
        assert column.top == ((True, 3), (False, 1))
        assert column.categories == ("False", "True")
        assert (column.min, column.max) == (False, True)
        assert column.mean == 0.75
        assert column.std == pytest.approx(frame["b"].astype(float).std())

    def test_datetimes(self, tmp_path: Path) -> None:
        times = pd.Series(
            pd.to_datetime(
                ["2024-01-01 00:00:00", "2024-01-03 12:00:00", None, "2023-12-31 00:00:00"]
            )
        ).dt.tz_localize("America/New_York")
        column = _profile(pd.DataFrame({"t": times}), tmp_path)["t"]
        assert column.logical_type == "datetime"
        assert column.dtype == "datetime64[us, America/New_York]"
        assert column.min == "2023-12-31T00:00:00-05:00"
        assert column.max == "2024-01-03T12:00:00-05:00"
        assert dt.datetime.fromisoformat(column.max) == times.max().to_pydatetime()
        epoch = times.dropna().astype("int64") / 1e6
        expected = np.quantile(epoch, np.linspace(0, 1, 11))
        assert column.quantiles == pytest.approx(expected, rel=1e-15)
        assert column.mean is None

    def test_dates(self, tmp_path: Path) -> None:
        column = _profile([{"d": dt.date(2024, 2, 29)}, {"d": dt.date(2000, 1, 1)}], tmp_path)["d"]
        assert (column.logical_type, column.min, column.max) == ("date", "2000-01-01", "2024-02-29")
        assert column.quantiles[0] == dt.datetime(2000, 1, 1, tzinfo=dt.UTC).timestamp()

    def test_strings_and_categories(self, tmp_path: Path) -> None:
        words = ["b", "a", "c", "a", None, "b", "a"]
        frame = pd.DataFrame({
            "s": words,
            "c": pd.Categorical(words, categories=["c", "b", "a", "zz"], ordered=True),
        })  # fmt: skip
        profile = _profile(frame, tmp_path)
        s, c = profile["s"], profile["c"]
        counts = frame["s"].value_counts()
        assert s.top == tuple((k, int(v)) for k, v in counts.items())
        assert s.top == (("a", 3), ("b", 2), ("c", 1))
        assert (s.min, s.max, s.distinct_count, s.null_count) == ("a", "c", 3, 1)
        assert s.categories == ("a", "b", "c")
        assert c.logical_type == "category"
        assert c.categories == ("c", "b", "a", "zz")
        assert (c.min, c.max) == ("c", "a")  # the categories' order, not the alphabet
        assert c.top == s.top

    def test_top_values_tie_by_value(self, tmp_path: Path) -> None:
        words = [f"w{i:02d}" for i in range(30)] * 2 + ["w29", "w17"]
        column = _profile(pd.DataFrame({"s": words[::-1]}), tmp_path)["s"]
        assert column.top == (("w17", 3), ("w29", 3), *((f"w{i:02d}", 2) for i in range(8)))

    def test_many_distinct_strings_leave_categories_out(self, tmp_path: Path) -> None:
        column = _profile(pd.DataFrame({"s": [f"v{i}" for i in range(1_001)]}), tmp_path)["s"]
        assert column.categories is None
        assert column.distinct_count == 1_001

    def test_estimates_past_the_exact_budgets(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        rng = np.random.default_rng(11)
        n = 1_300_000
        frame = pd.DataFrame({
            "x": rng.standard_normal(n),
            "few": rng.integers(0, 40, n),
            "s": pd.Series(rng.integers(0, 150_000, n)).map("k{}".format),
        })  # fmt: skip
        profile = _profile(frame, tmp_path)
        x, few, s = profile["x"], profile["few"], profile["s"]
        assert not x.distinct_exact
        assert abs(x.distinct_count - n) / n < 3 * 0.0081
        expected = np.quantile(frame["x"], np.linspace(0.1, 0.9, 9))
        # The reservoir's ranks are within 0.5 percentage points (3 standard errors).
        ranks = np.searchsorted(np.sort(frame["x"]), x.quantiles[1:-1]) / n
        assert np.abs(ranks - np.linspace(0.1, 0.9, 9)).max() < 0.005
        assert x.quantiles[1:-1] == pytest.approx(expected, abs=0.05)
        assert (x.min, x.max) == (frame["x"].min(), frame["x"].max())
        assert (few.distinct_count, few.distinct_exact) == (40, True)
        true_distinct = frame["s"].nunique()
        assert not s.distinct_exact
        assert abs(s.distinct_count - true_distinct) / true_distinct < 3 * 0.0081

    def test_profiles_are_json(self, tmp_path: Path) -> None:
        frame = pd.DataFrame({name: values for name, values in _ROUND_TRIPS.items()})
        frame["all null"] = np.nan
        frame["nothing"] = None
        for column in _ingest(frame, tmp_path).columns:
            json.dumps(dataclasses.asdict(column), allow_nan=False)

    def test_the_original_and_stored_types(self, tmp_path: Path) -> None:
        profile = _profile(pd.DataFrame({name: v for name, v in _ROUND_TRIPS.items()}), tmp_path)
        assert profile["ints with nulls"].dtype == "Int64"
        assert profile["ints with nulls"].stored_type == "int64"
        assert profile["categories"].logical_type == "category"
        assert profile["dates"].logical_type == "date"
        assert profile["object strings"].dtype == "object"
        csv = _profile([{"a": 1.5}], tmp_path)
        assert csv["a"].dtype == csv["a"].stored_type == "double"


# The peak RSS of the child's own address space (VmHWM). getrusage's ru_maxrss would
# do, but Linux carries the forking parent's peak across exec into it: under pytest,
# after building a large table, the child would start at the parent's high-water mark.
# A small file of the same columns goes first, so the baseline already holds what
# does not grow with the data (pyarrow's code paged in, its thread pools). The
# allocators are told to give freed memory back (pyarrow's system pool, glibc's fixed
# mmap threshold), so the peak is what ingest holds, not what malloc keeps cached:
# with the defaults the same run peaks about 85 MiB higher (0.9 of one copy), all of
# it freed memory that mimalloc and glibc's adaptive threshold keep for reuse.
_MEASURE = textwrap.dedent(
    """
    import pathlib, re, sys
    from umlaut_core.datasets import ingest

    def peak_kib():
        with open("/proc/self/status") as fh:
            return int(re.search(r"VmHWM:\\s+(\\d+) kB", fh.read()).group(1))

    small, big, workdir = sys.argv[1:]
    ingest.ingest(small, workdir=pathlib.Path(workdir))
    before = peak_kib()
    got = ingest.ingest(big, workdir=pathlib.Path(workdir))
    print(peak_kib() - before, got.rows)
    """
)


class TestStreaming:
    """A large Parquet file streams through without a second copy in memory."""

    @pytest.mark.slow
    @pytest.mark.skipif(sys.platform != "linux", reason="reads /proc/self/status")
    def test_two_million_rows(self, tmp_path: Path) -> None:
        n = 2_000_000
        rng = np.random.default_rng(5)
        words = np.array([f"customer segment number {i:04d}" for i in range(500)], dtype=object)
        table = pa.table({
            "a": rng.standard_normal(n),
            "b": rng.standard_normal(n),
            "c": rng.integers(0, 100, n),
            "at": pa.array(rng.integers(0, 10**15, n), pa.timestamp("us")),
            "ok": rng.random(n) < 0.5,
            "segment": pa.array(words[rng.integers(0, 500, n)], pa.string()),
            "region": pa.array(words[rng.integers(0, 50, n)], pa.string()),
        })  # fmt: skip
        one_copy = table.nbytes
        path, small = tmp_path / "big.parquet", tmp_path / "small.parquet"
        pq.write_table(table, path)  # pyarrow's default: row groups of 1Mi rows
        pq.write_table(table.slice(0, 1000), small)
        expected = dataset_digest(table)
        del table
        workdir = tmp_path / "work"
        workdir.mkdir()
        env = {
            **os.environ, "ARROW_DEFAULT_MEMORY_POOL": "system",
            "MALLOC_MMAP_THRESHOLD_": "131072",
        }  # fmt: skip
        out = subprocess.run(
            [sys.executable, "-c", _MEASURE, str(small), str(path), str(workdir)],
            capture_output=True, text=True, check=True, timeout=600, env=env,
        )  # fmt: skip
        grown_kib, rows = map(int, out.stdout.split())
        assert rows == n
        # Measured: about 0.45 of one copy (8 MB of exact values for each of the four
        # numeric columns, two 16 MiB row groups, pyarrow's reader); two copies would
        # be 5 times as much.
        assert grown_kib * 1024 < 0.6 * one_copy, (grown_kib, one_copy)
        assert dataset_digest(path) == expected


def _frame() -> Any:
    return pd.DataFrame({
        "sepal": [5.1, 4.9, 6.3, 5.8],
        "kind": pd.Categorical(["setosa", "setosa", "virginica", "virginica"]),
        "seen": pd.to_datetime(["2024-01-01", "2024-01-02", None, "2024-01-04"], utc=True),
        "ok": [True, False, True, True],
        "n": pd.array([1, None, 3, 4], dtype="Int64"),
    })  # fmt: skip


class TestEndToEnd:
    """Umlaut.track_dataset and load on the memory and SQLite backends."""

    def _check(self, um: Any) -> None:
        frame = _frame()
        dv = um.track_dataset(frame, "iris", target="kind", description="four rows")
        assert (dv.version, dv.created, dv.rows) == (1, True, 4)
        assert dv.column("kind").role == "target"
        assert dv.digest == dataset_digest(frame)
        again = um.track_dataset(frame.set_axis([4, 3, 2, 1]), "iris", target="kind")
        assert (again.version, again.created) == (1, False)
        other = um.track_dataset(frame.iloc[:3], "iris", target="kind")
        assert (other.version, other.created) == (2, True)
        copy = um.track_dataset(frame, "iris-copy")
        assert (copy.version, copy.created, copy.sha256) == (1, True, dv.sha256)
        pd.testing.assert_frame_equal(um.load_dataset("iris", 1), frame)
        pd.testing.assert_frame_equal(um.get_dataset("iris").load(), frame.iloc[:3])
        assert um.get_dataset("iris", 1).columns == dv.columns
        table = um.get_dataset("iris", 1).profile_table()
        assert table.splitlines()[0] == f"**iris** v1 · 4 rows · 5 columns · {dv.digest}"

    def test_memory(self) -> None:
        self._check(Umlaut("memory:"))

    def test_sqlite(self, tmp_path: Path) -> None:
        if importlib.util.find_spec("umlaut_sql._datasets") is None:
            pytest.skip("umlaut-sql has no dataset store yet")
        um = Umlaut(f"sqlite:///{tmp_path}/x.db", artifact_uri=str(tmp_path / "artifacts"))
        try:
            self._check(um)
        finally:
            um.close()


class TestReport:
    """profile_table prints mlops-lite's column table as Markdown."""

    def test_layout(self, tmp_path: Path) -> None:
        got = _ingest(_frame().rename(columns={"sepal": "sepal | length"}), tmp_path, target="kind")
        text = profile_table(_version(got))
        lines = text.splitlines()
        assert lines[0] == f"**d** v1 · 4 rows · 5 columns · {got.digest}"
        assert lines[2].startswith("| column | role | type | dtype | stored as | nulls |")
        assert lines[4].startswith(r"| sepal \| length | feature | float | float64 | double | 0 |")
        assert "| 5.525 |" in lines[4]
        assert lines[5].startswith("| kind | target | category | category |")
        assert len(lines) == 4 + 5

    def test_estimates_and_long_values(self, tmp_path: Path) -> None:
        from umlaut_core.datasets.records import ColumnProfile

        column = ColumnProfile(
            name="x" * 60, logical_type="string", dtype="str", stored_type="large_string",
            nullable=False, null_count=0, distinct_count=123_456, distinct_exact=False,
            min="a\nb", max="z",
        )  # fmt: skip
        dv = dataclasses.replace(_version(_ingest([{"a": 1}], tmp_path)), columns=(column,))
        row = profile_table(dv).splitlines()[4]
        assert "≈123,456" in row
        assert "x" * 39 + "…" in row
        assert "| a b |" in row
