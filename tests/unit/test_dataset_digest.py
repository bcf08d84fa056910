"""The canonical dataset digest: as documented, stable where data is equal, distinct
where it is not."""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import struct
import warnings
from pathlib import Path
from typing import Any

import pytest

np = pytest.importorskip("numpy")
pd = pytest.importorskip("pandas")
pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

from umlaut_core.datasets.ingest import dataset_digest  # noqa: E402
from umlaut_core.datasets.sketches import HyperLogLog, hash64  # noqa: E402


def _lp(text: str) -> bytes:
    raw = text.encode()
    return struct.pack("<Q", len(raw)) + raw


def _sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _base() -> Any:
    """A small frame with one column of each common kind."""
    return pd.DataFrame({
        "id": np.arange(6, dtype="int64"),
        "x": [0.5, 1.25, -3.0, 4.0, 1e10, 2.0],
        "n": pd.array([1, None, 3, 4, 5, 6], dtype="Int64"),
        "flag": [True, False, True, True, False, True],
        "s": ["a", "bc", None, "", "é", "z"],
        "c": pd.Categorical(["lo", "hi", "lo", "mid", "hi", "lo"]),
        "t": pd.to_datetime(["2024-01-01", "2024-01-02", None, "2024-01-04",
                             "2024-01-05", "2024-01-06"]).tz_localize("UTC").as_unit("ns"),
    })  # fmt: skip


def _table(frame: Any) -> Any:
    """``pa.Table.from_pandas`` without pandas 3.1's warning about how pyarrow reads
    zone-aware columns (the values are right)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"Series\.values returning")
        return pa.Table.from_pandas(frame, preserve_index=False)


class TestDocumentedEncoding:
    """The digest is the encoding the canonical module's docstring spells out."""

    def test_a_hand_built_encoding_matches(self) -> None:
        frame = pd.DataFrame({
            "a": pd.array([1, None, 3], dtype="Int64"),
            "f": [0.5, float("nan"), 2.0],
            "s": ["x", None, "yz"],
            "b": [True, False, True],
            "t": pd.to_datetime(
                ["2024-01-01T00:00:00.5", None, "1969-12-31T23:59:59.999999999"]
            ).tz_localize("Europe/Berlin"),
            "d": [dt.date(1970, 1, 2), None, dt.date(1969, 12, 31)],
        })  # fmt: skip
        valid = b"\x01\x00\x01"
        berlin = pd.Timestamp("2024-01-01T00:00:00.5", tz="Europe/Berlin").value
        late = pd.Timestamp("1969-12-31T23:59:59.999999999", tz="Europe/Berlin").value
        columns = [
            ("a", "integer", [valid, struct.pack("<qqq", 1, 0, 3)]),
            ("f", "float", [valid, struct.pack("<ddd", 0.5, 0.0, 2.0)]),
            ("s", "string", [valid, struct.pack("<qqq", 1, 0, 2), b"xyz"]),
            ("b", "boolean", [b"\x01\x01\x01", b"\x01\x00\x01"]),
            (
                "t",
                "datetime:utc",
                [
                    valid,
                    struct.pack("<qqq", berlin // 10**9, 0, late // 10**9),
                    struct.pack("<III", berlin % 10**9, 0, late % 10**9),
                ],
            ),
            ("d", "date", [valid, struct.pack("<qqq", 1, 0, -1)]),
        ]
        h = hashlib.sha256(b"umlaut.dataset/1\n" + struct.pack("<QQ", len(columns), 3))
        for name, kind, streams in columns:
            h.update(_lp(name) + _lp(kind))
            for stream in streams:
                h.update(_sha(stream))
        assert dataset_digest(frame) == "sha256:" + h.hexdigest()

    def test_the_digest_is_a_full_sha256(self) -> None:
        digest = dataset_digest(_base())
        assert digest.startswith("sha256:")
        assert len(digest) == len("sha256:") + 64
        int(digest.removeprefix("sha256:"), 16)


class TestStability:
    """Spellings of the same data give one digest."""

    @pytest.mark.parametrize(
        "dtype", ["int8", "int16", "int32", "int64", "uint8", "uint32", "uint64", "Int64"]
    )
    def test_integer_widths_and_nullable_ints_without_nulls(self, dtype: str) -> None:
        values = [1, 2, 3, 100]
        assert dataset_digest(pd.DataFrame({"v": pd.array(values, dtype=dtype)})) == (
            dataset_digest(pd.DataFrame({"v": np.array(values, dtype="int64")}))
        )

    def test_float32_values_equal_their_float64_widening(self) -> None:
        values = np.array([0.1, 2.5, np.nan, -7.75], dtype="float32")
        assert dataset_digest(pd.DataFrame({"v": values})) == dataset_digest(
            pd.DataFrame({"v": values.astype("float64")})
        )

    def test_nullable_floats_and_nan(self) -> None:
        plain = pd.DataFrame({"v": [1.5, np.nan, 3.0]})
        nullable = pd.DataFrame({"v": pd.array([1.5, None, 3.0], dtype="Float64")})
        table = pa.table({"v": pa.array([1.5, float("nan"), 3.0])})  # NaN, not null
        assert dataset_digest(plain) == dataset_digest(nullable) == dataset_digest(table)

    def test_string_dtypes(self) -> None:
        values = ["a", None, "ccc"]
        digests = {
            dataset_digest(pd.DataFrame({"v": pd.Series(values, dtype=d)}))
            for d in ("object", "string", "str", "string[pyarrow]")
        }
        digests.add(dataset_digest(pa.table({"v": pa.array(values, pa.large_string())})))
        digests.add(dataset_digest(pa.table({"v": pa.array(values, pa.string_view())})))
        assert len(digests) == 1

    def test_timestamp_units_and_zones(self) -> None:
        instants = pd.to_datetime(["2024-03-01 12:00:00", "1960-01-01 00:00:00", None]).tz_localize(
            "UTC"
        )
        digests = {
            dataset_digest(pd.DataFrame({"t": instants.as_unit(unit)}))
            for unit in ("s", "ms", "us", "ns")
        }
        digests.add(dataset_digest(pd.DataFrame({"t": instants.tz_convert("Asia/Tokyo")})))
        assert len(digests) == 1

    def test_the_index_is_not_content(self) -> None:
        frame = _base()
        reindexed = frame.set_axis([f"r{i}" for i in range(6)])
        multi = frame.set_index([frame["id"], frame["s"]], drop=False)
        named = frame.rename_axis("row")
        shuffled_labels = frame.set_axis([5, 3, 1, 0, 2, 4])
        expected = dataset_digest(frame)
        for other in (reindexed, multi, named, shuffled_labels, frame.iloc[::-1].iloc[::-1]):
            assert dataset_digest(other) == expected

    def test_batch_boundaries(self) -> None:
        table = _table(_base())
        expected = dataset_digest(table)
        for size in (1, 2, 5):
            rechunked = pa.Table.from_batches(table.to_batches(max_chunksize=size))
            assert rechunked.column(0).num_chunks > 1
            assert dataset_digest(rechunked) == expected

    def test_category_dictionaries_that_differ_per_chunk(self) -> None:
        first = pa.array(["b", "a"]).dictionary_encode()
        second = pa.DictionaryArray.from_arrays(pa.array([0, 1], pa.int32()), pa.array(["c", "b"]))
        chunked = pa.table({"v": pa.chunked_array([first, second])})
        one = pa.table({"v": pa.array(["b", "a", "c", "b"]).dictionary_encode()})
        assert dataset_digest(chunked) == dataset_digest(one)

    def test_unused_categories_and_their_order_are_not_content(self) -> None:
        values = ["x", "y", "x"]
        assert dataset_digest(
            pd.DataFrame({"v": pd.Categorical(values, categories=["y", "x", "unused"])})
        ) == dataset_digest(pd.DataFrame({"v": pd.Categorical(values)}))

    def test_every_input_form_of_the_same_data(self, tmp_path: Path) -> None:
        frame = pd.DataFrame({
            "id": [1, 2, 3],
            "x": [0.5, None, 2.25],
            "name": ["a", "b", None],
            "ok": [True, False, True],
            "at": pd.to_datetime(["2024-01-01 10:00:00", "2024-01-02 11:30:00", None]),
        })  # fmt: skip
        records = [
            {"id": 1, "x": 0.5, "name": "a", "ok": True, "at": dt.datetime(2024, 1, 1, 10)},
            {"id": 2, "x": None, "name": "b", "ok": False, "at": dt.datetime(2024, 1, 2, 11, 30)},
            {"id": 3, "x": 2.25, "name": None, "ok": True, "at": None},
        ]
        csv = tmp_path / "data.csv"
        csv.write_text(
            "id,x,name,ok,at\n1,0.5,a,true,2024-01-01 10:00:00\n"
            "2,,b,false,2024-01-02 11:30:00\n3,2.25,,true,\n"
        )
        parquet = tmp_path / "data.parquet"
        frame.set_axis([7, 8, 9]).to_parquet(parquet)  # the index is written, and dropped
        csv_digest = dataset_digest(csv)
        # CSV has no null string: an empty field in a text column is "".
        frame_for_csv = frame.assign(name=["a", "b", ""])
        assert csv_digest == dataset_digest(frame_for_csv)
        digests = {
            dataset_digest(frame),
            dataset_digest(pa.Table.from_pandas(frame)),  # with its RangeIndex metadata
            dataset_digest(records),
            dataset_digest(parquet),
            dataset_digest(str(parquet)),
        }
        assert len(digests) == 1


def _variants() -> dict[str, Any]:
    """Near-identical frames: each differs from the base in one small way."""
    base = _base()
    out: dict[str, Any] = {"base": base}
    for column in base.columns:
        changed = base.copy()
        value = changed.at[3, column]
        if column == "flag":
            changed.at[3, column] = not value
        elif column == "c":
            changed[column] = changed[column].cat.add_categories(["new"])
            changed.at[3, column] = "new"
        elif column == "s":
            changed.at[3, column] = "x"
        elif column == "t":
            changed.at[3, column] = value + pd.Timedelta(1, "ns")
        else:
            changed.at[3, column] = value + 1
        out[f"one value of {column}"] = changed
    out["renamed"] = base.rename(columns={"x": "x2"})
    out["renamed with a space"] = base.rename(columns={"x": "x "})
    out["int as float"] = base.assign(id=base["id"].astype("float64"))
    out["null not zero"] = base.assign(x=base["x"].where(base.index != 0, np.nan))
    out["zero not null"] = base.assign(n=base["n"].fillna(0))
    out["negative zero"] = base.assign(x=[-0.0, *base["x"][1:]])
    out["zero"] = base.assign(x=[0.0, *base["x"][1:]])
    out["columns swapped"] = base[["x", "id", *base.columns[2:]]]
    out["values of two columns swapped"] = base.assign(id=base["n"], n=base["id"])
    out["rows swapped"] = base.iloc[[1, 0, 2, 3, 4, 5]].reset_index(drop=True)
    out["a row fewer"] = base.iloc[:5]
    out["a row more"] = pd.concat([base, base.iloc[[5]]], ignore_index=True)
    out["a column fewer"] = base.drop(columns=["flag"])
    out["string boundary"] = base.assign(s=["ab", "c", None, "", "é", "z"])
    out["empty not null"] = base.assign(s=["a", "bc", "", "", "é", "z"])
    out["category as string"] = base.assign(c=base["c"].astype("str"))
    out["ordered category"] = base.assign(c=base["c"].cat.as_ordered())
    out["naive time"] = base.assign(t=base["t"].dt.tz_localize(None))
    out["bool as int"] = base.assign(flag=base["flag"].astype("int64"))
    out["string as bytes"] = base.assign(
        s=pd.Series([v.encode() if isinstance(v, str) else None for v in base["s"]], dtype=object)
    )
    out["all null column"] = base.assign(x=[np.nan] * 6)
    out["time as date"] = base.assign(t=base["t"].dt.date)
    return out


class TestCollisions:
    """Different data never shares a digest in a corpus of near-identical frames."""

    def test_near_identical_frames(self) -> None:
        variants = _variants()
        digests = {name: dataset_digest(frame) for name, frame in variants.items()}
        by_digest: dict[str, list[str]] = {}
        for name, digest in digests.items():
            by_digest.setdefault(digest, []).append(name)
        assert [names for names in by_digest.values() if len(names) > 1] == []

    def test_every_single_value_change_of_a_wider_frame(self) -> None:
        rng = np.random.default_rng(7)
        frame = pd.DataFrame(rng.integers(0, 3, size=(40, 5)), columns=list("abcde"))
        seen = {dataset_digest(frame)}
        for row, column in itertools.product(range(40), "abcde"):
            changed = frame.copy()
            changed.at[row, column] += 1
            seen.add(dataset_digest(changed))
        assert len(seen) == 1 + 40 * 5


class TestHyperLogLog:
    """The distinct-count estimate stays within its documented error."""

    @pytest.mark.parametrize("n", [150_000, 1_000_000])
    def test_estimate_within_three_standard_errors(self, n: int) -> None:
        hll = HyperLogLog()
        values = np.arange(n, dtype=np.int64) * 7919
        for part in np.array_split(values, 7):
            hll.add(hash64(part))
        hll.add(hash64(values[:1000]))  # repeats change nothing
        assert abs(hll.estimate() - n) / n < 3 * 0.0081

    def test_float_zero_signs_hash_alike(self) -> None:
        assert hash64(np.array([0.0]))[0] == hash64(np.array([-0.0]))[0]
