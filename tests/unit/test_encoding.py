"""The JSON encoding of inputs, outputs and error text (issue #12)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from typing import Any

import pytest

from umlaut_core._calls import error_message, error_type
from umlaut_core.encoding import check_input, encode_input, encode_output, to_jsonable
from umlaut_core.exceptions import EncodingError, InputEncodingError, OutputEncodingError

ENCODERS: list[tuple[Callable[[Any], str], type[EncodingError]]] = [
    (encode_input, InputEncodingError),
    (encode_output, OutputEncodingError),
]
encoders = pytest.mark.parametrize(("encode", "error"), ENCODERS, ids=["input", "output"])


def _json(value: Any) -> Any:
    text = encode_input(value)
    text.encode("utf-8")  # always valid UTF-8
    return json.loads(text)


class TestSurrogateKeys:
    """A lone surrogate in a dict key is refused at any depth, naming the path escaped."""

    @encoders
    @pytest.mark.parametrize(
        ("value", "path"),
        [
            ({"\ud800": 1}, r"$['\ud800']"),
            ({"a": "x", "b\udcff": 2}, r"$['b\udcff']"),
            ({"a": {"\ud800": 1}}, r"$.a['\ud800']"),
            ({"a": [1, {"k": {"\udfff z": None}}]}, r"$.a[1].k['\udfff z']"),
            ({"a": {"\ud800": 1.5, "b": [1]}}, r"$.a['\ud800']"),
        ],
        ids=["flat", "flat-second-key", "nested", "in-list", "non-flat-value"],
    )
    def test_refused_with_escaped_path(
        self, encode: Callable[[Any], str], error: type[EncodingError], value: Any, path: str
    ) -> None:
        with pytest.raises(error, match="lone surrogate") as info:
            encode(value)
        message = str(info.value)
        assert path in message
        message.encode("utf-8")  # the message itself is valid text

    @encoders
    def test_surrogate_values_still_refused(
        self, encode: Callable[[Any], str], error: type[EncodingError]
    ) -> None:
        for value in ({"x": "\ud800"}, "\ud800", ["ok", {"y": "a\udcffb"}]):
            with pytest.raises(error, match="lone surrogate"):
                encode(value)

    def test_valid_non_ascii_keys_pass(self) -> None:
        assert _json({"Grüße": 1, "ключ": {"✓ 😀": "é"}}) == {"Grüße": 1, "ключ": {"✓ 😀": "é"}}

    def test_to_jsonable_refuses_surrogate_keys(self) -> None:
        with pytest.raises(Exception, match="lone surrogate"):
            to_jsonable({"a": {"\ud800": 1}})


class TestBigIntegers:
    """Integers beyond Python's int-to-str digit limit are refused, never a raw error."""

    @encoders
    @pytest.mark.parametrize(
        ("value", "path"),
        [
            (10**5000, "$ "),
            ({"x": 10**5000}, "$.x "),
            ({"x": -(10**5000), "y": 1.5}, "$.x "),
            ([1, [10**5000]], "$[1][0] "),
            ({"x": {1, 10**5000}}, "$.x[] "),
        ],
        ids=["scalar", "flat-dict", "negative", "nested", "in-set"],
    )
    def test_refused_with_advice(
        self, encode: Callable[[Any], str], error: type[EncodingError], value: Any, path: str
    ) -> None:
        with pytest.raises(error, match="pass it as a string") as info:
            encode(value)
        assert f"at {path}" in str(info.value)

    def test_large_but_printable_ints_pass(self) -> None:
        assert _json({"x": 10**1000}) == {"x": 10**1000}
        assert _json(2**64) == 2**64

    @encoders
    def test_errors_from_the_c_encoder_are_typed(
        self,
        encode: Callable[[Any], str],
        error: type[EncodingError],
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        import umlaut_core.encoding as encoding

        def broken(value: Any) -> str:
            raise OverflowError("boom")

        monkeypatch.setattr(encoding, "_dumps", broken)
        for value in (1, {"x": 1}, {"x": [1]}, [1]):
            with pytest.raises(error, match="boom"):
                encode(value)


class TestErrorText:
    """A model's error text is stored as valid UTF-8 without NUL, truncated, never lost."""

    def test_surrogate_and_nul_are_escaped(self) -> None:
        text = error_message(ValueError("bad \ud800 and \x00 text"))
        assert text == r"bad \ud800 and \x00 text"
        text.encode("utf-8")

    def test_valid_text_is_unchanged(self) -> None:
        assert error_message(ValueError("Grüße ✓ 😀")) == "Grüße ✓ 😀"
        assert error_message(KeyError("k")) == "'k'"

    def test_truncated_at_10000_characters(self) -> None:
        text = error_message(ValueError("é" * 20_000))
        assert text == "é" * 10_000 + "… (truncated)"

    def test_truncation_keeps_escapes_whole(self) -> None:
        text = error_message(ValueError("\x00" * 20_000))
        assert text == r"\x00" * 10_000 + "… (truncated)"

    def test_unprintable_exception(self) -> None:
        class Unprintable(ValueError):
            def __str__(self) -> str:
                raise RuntimeError("no text")

        assert error_message(Unprintable()) == (
            f"<unprintable {__name__}.TestErrorText.test_unprintable_exception"
            ".<locals>.Unprintable>"
        )

    def test_str_returning_a_non_string(self) -> None:
        class Odd(ValueError):
            def __str__(self) -> Any:
                return 42

        assert error_message(Odd()).startswith("<unprintable ")

    def test_error_type(self) -> None:
        assert error_type(ValueError()) == "ValueError"
        assert error_type(OutputEncodingError()) == "umlaut_core.exceptions.OutputEncodingError"
        odd = type("Odd", (Exception,), {"__module__": "mod\x00ule"})
        assert error_type(odd()) == r"mod\x00ule.Odd"


class TestTimes:
    """Dates, times and durations become ISO 8601 text; missing times become null."""

    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            (dt.timedelta(days=1, hours=2, minutes=3, seconds=4.5), "P1DT2H3M4.5S"),
            (dt.timedelta(0), "PT0S"),
            (dt.timedelta(seconds=-1), "-PT1S"),
            (dt.timedelta(days=-1, seconds=1), "-PT23H59M59S"),
            (dt.timedelta(microseconds=1), "PT0.000001S"),
            (dt.timedelta(hours=1), "PT1H"),
            (dt.timedelta(days=400), "P1Y35D"),
            (dt.timedelta(days=2, minutes=5), "P2DT5M"),
        ],
    )
    def test_timedelta_as_iso_duration(self, value: dt.timedelta, expected: str) -> None:
        assert _json({"d": value}) == {"d": expected}

    def test_datetime_unchanged(self) -> None:
        when = dt.datetime(2026, 3, 1, 12, 30, 0, 5, tzinfo=dt.UTC)
        assert _json([when, when.date(), when.time()]) == [
            "2026-03-01T12:30:00.000005+00:00",
            "2026-03-01",
            "12:30:00.000005",
        ]


class TestNumpy:
    """numpy datetime64/timedelta64 become ISO text, not integers; NaT becomes null."""

    def test_datetime64_array(self) -> None:
        np = pytest.importorskip("numpy")
        values = ["2026-03-01T12:30:00.123", "NaT", "2026-03-01T12:30:00.000000001", "2026-03-01"]
        assert _json(np.array(values, dtype="datetime64[ns]")) == [
            "2026-03-01T12:30:00.123000",
            None,
            "2026-03-01T12:30:00.000000001",
            "2026-03-01T00:00:00",
        ]

    def test_datetime64_units_and_shapes(self) -> None:
        np = pytest.importorskip("numpy")
        assert _json(np.array([["2026-03-01"], ["NaT"]], dtype="datetime64[D]")) == [
            ["2026-03-01"],
            [None],
        ]
        assert _json(np.datetime64("2026-03-01T12:30")) == "2026-03-01T12:30:00"
        assert _json(np.datetime64("2026-03-01T12:30:01.5", "ms")) == "2026-03-01T12:30:01.500000"
        assert _json(np.datetime64("2026-03-01T12:30:00", "ns")) == "2026-03-01T12:30:00"
        assert _json({"t": np.datetime64("NaT")}) == {"t": None}
        assert _json(np.array([], dtype="datetime64[ns]")) == []

    def test_timedelta64(self) -> None:
        np = pytest.importorskip("numpy")
        seconds = np.array([1, -1, 86_400 * 400 + 3601], dtype="timedelta64[s]")
        assert _json(seconds) == ["PT1S", "-PT1S", "P1Y35DT1H1S"]
        assert _json(np.timedelta64(1500, "ms")) == "PT1.5S"
        assert _json(np.timedelta64(1, "ns")) == "PT0.000000001S"
        assert _json(np.timedelta64(3, "M")) == "P3M"
        assert _json(np.array([2, "NaT"], dtype="timedelta64[D]")) == ["P2D", None]

    def test_other_numpy_values_unchanged(self) -> None:
        np = pytest.importorskip("numpy")
        assert _json({"a": np.arange(3), "f": np.float32(0.5), "b": np.bool_(True)}) == {
            "a": [0, 1, 2],
            "f": 0.5,
            "b": True,
        }


class TestPandasScalars:
    """NaT and NA are null, Timestamp and Timedelta ISO text."""

    def test_missing_values(self) -> None:
        pd = pytest.importorskip("pandas")
        assert encode_input({"t": pd.NaT, "n": pd.NA}) == '{"t":null,"n":null}'
        assert encode_output(pd.NaT) == "null"

    def test_timestamp_and_timedelta(self) -> None:
        pd = pytest.importorskip("pandas")
        value = {
            "t": pd.Timestamp("2026-03-01 12:30:00.000000001", tz="UTC"),
            "d": pd.Timedelta("1 day 2h 3min 4.5s"),
            "ns": pd.Timedelta(1, unit="ns"),
        }
        assert _json(value) == {
            "t": "2026-03-01T12:30:00.000000001+00:00",
            "d": "P1DT2H3M4.5S",
            "ns": "PT0.000000001S",
        }


class TestPandasSeries:
    """A Series is a dict when its labels stay apart as text, else [label, value] pairs."""

    def test_unique_labels_give_a_dict(self) -> None:
        pd = pytest.importorskip("pandas")
        assert encode_input(pd.Series([1, 2], index=["a", "b"])) == '{"a":1,"b":2}'
        assert encode_input(pd.Series([1.5, 2])) == '{"0":1.5,"1":2.0}'

    def test_duplicate_labels_give_pairs(self) -> None:
        pd = pytest.importorskip("pandas")
        assert encode_input(pd.Series([1, 2], index=["a", "a"])) == '[["a",1],["a",2]]'

    def test_labels_equal_as_text_give_pairs(self) -> None:
        pd = pytest.importorskip("pandas")
        series = pd.Series([1, 2], index=pd.Index([1, "1"], dtype=object))
        assert encode_input(series) == '[[1,1],["1",2]]'

    def test_pair_labels_use_the_encoder(self) -> None:
        pd = pytest.importorskip("pandas")
        series = pd.Series([1, 2], index=pd.to_datetime(["2026-03-01", "2026-03-01"]))
        assert encode_input(series) == ('[["2026-03-01T00:00:00",1],["2026-03-01T00:00:00",2]]')

    def test_datetime_values_and_missing(self) -> None:
        pd = pytest.importorskip("pandas")
        series = pd.Series(pd.to_datetime(["2026-03-01 12:30", None]))
        assert encode_input(series) == '{"0":"2026-03-01T12:30:00","1":null}'
        durations = pd.Series(pd.to_timedelta(["1s", None]), index=["a", "b"])
        assert encode_input(durations) == '{"a":"PT1S","b":null}'

    def test_nullable_integers(self) -> None:
        pd = pytest.importorskip("pandas")
        series = pd.Series([1, None], dtype="Int64", index=["a", "b"])
        assert encode_input(series) == '{"a":1,"b":null}'


class TestPandasDataFrame:
    """A DataFrame keeps its index and every column, or is refused."""

    def test_default_index_gives_a_list_of_rows(self) -> None:
        pd = pytest.importorskip("pandas")
        frame = pd.DataFrame({"x": [1, 2], "y": ["a", "b"]})
        assert encode_input(frame) == '[{"x":1,"y":"a"},{"x":2,"y":"b"}]'
        assert encode_input(pd.DataFrame({"x": []})) == "[]"

    def test_string_index_gives_a_dict_of_rows(self) -> None:
        pd = pytest.importorskip("pandas")
        frame = pd.DataFrame({"x": [1, 2]}, index=["r1", "r2"])
        assert encode_input(frame) == '{"r1":{"x":1},"r2":{"x":2}}'

    def test_other_unique_index_gives_a_dict_of_rows(self) -> None:
        pd = pytest.importorskip("pandas")
        shifted = pd.DataFrame({"x": [1, 2]}, index=[1, 2])
        assert encode_input(shifted) == '{"1":{"x":1},"2":{"x":2}}'
        filtered = pd.DataFrame({"x": [1, 2, 3]}).iloc[1:]
        assert encode_input(filtered) == '{"1":{"x":2},"2":{"x":3}}'

    def test_duplicate_index_gives_pairs(self) -> None:
        pd = pytest.importorskip("pandas")
        frame = pd.DataFrame({"x": [1, 2]}, index=["r", "r"])
        assert encode_input(frame) == '[["r",{"x":1}],["r",{"x":2}]]'

    def test_datetime_index_and_columns(self) -> None:
        pd = pytest.importorskip("pandas")
        frame = pd.DataFrame(
            {"t": pd.to_datetime(["2026-03-01", None]), "d": pd.to_timedelta(["90s", None])}
        )
        assert encode_input(frame) == (
            '[{"t":"2026-03-01T00:00:00","d":"PT1M30S"},{"t":null,"d":null}]'
        )

    def test_non_string_column_labels_become_text(self) -> None:
        pd = pytest.importorskip("pandas")
        assert encode_input(pd.DataFrame([[1, 2]], columns=[1, 2])) == '[{"1":1,"2":2}]'

    def test_duplicate_column_names_are_refused(self) -> None:
        pd = pytest.importorskip("pandas")
        frame = pd.DataFrame([[1, 2, 3]], columns=["a", "a", "b"])
        with pytest.raises(InputEncodingError, match=r"duplicate column names \('a'\)"):
            encode_input({"df": frame})

    def test_column_labels_equal_as_text_are_refused(self) -> None:
        pd = pytest.importorskip("pandas")
        frame = pd.DataFrame([[1, 2]], columns=pd.Index([1, "1"], dtype=object))
        with pytest.raises(OutputEncodingError, match=r"same as text \('1', 1\)"):
            encode_output(frame)

    def test_bad_values_name_their_path(self) -> None:
        pd = pytest.importorskip("pandas")
        frame = pd.DataFrame({"x": [1.0, float("nan")]}, index=["a", "b"])
        with pytest.raises(InputEncodingError, match=r"nan at \$\.df\.b\.x"):
            encode_input({"df": frame})


class TestFastPaths:
    """The fast paths give the same JSON as the general path."""

    @pytest.mark.parametrize(
        "value",
        [
            {"a": 1, "b": "é", "c": None, "d": True, "e": 1.5},
            {},
            1,
            True,
            None,
            "text",
            -(2**70),
            [{"a": 1.5, "b": "é"}, {"a": None, "c": {"p": 0.25}}],
            [1, "x", None, False, 2.5],
            [],
            [[1, 2], (3, 4)],
            [{"a": (1, 2)}],
            [10**700],
        ],
    )
    def test_same_text(self, value: Any) -> None:
        assert encode_input(value) == json.dumps(
            to_jsonable(value), ensure_ascii=False, separators=(",", ":")
        )

    def test_nan_in_flat_dict_still_refused(self) -> None:
        with pytest.raises(InputEncodingError, match=r"nan at \$\.x"):
            encode_input({"x": float("nan")})

    @pytest.mark.parametrize(
        ("value", "path"),
        [
            ([{"x": 1.0}, {"x": float("nan")}], r"nan at \$\[1\]\.x"),
            ([1.0, float("inf")], r"inf at \$\[1\]"),
            ([{"x": "\ud800"}], r"\$\[0\]\.x"),
            (["ok", "\udfff"], r"\$\[1\]"),
            ([{"x": {"y": float("nan")}}], r"nan at \$\[0\]\.x\.y"),
        ],
    )
    def test_bad_rows_in_a_list_still_refused(self, value: Any, path: str) -> None:
        with pytest.raises(InputEncodingError, match=path):
            encode_input(value)


class TestCheckInput:
    """check_input refuses exactly what encode_input refuses, without building text."""

    @pytest.mark.parametrize(
        "value",
        [
            {"a": 1, "b": "x", "c": True, "d": None, "e": 1.5},
            {"ü": "ß"},
            {"a": 10**600},
            {"a": 10**5000},
            {"a": float("nan")},
            {"a": float("inf")},
            {"\ud800": 1},
            {"a": "\udfff"},
            {"a": b"bytes"},
            {1: "int key"},
            {"a": {"nested": float("nan")}},
            {"a": [1, 2, {"b": "\ud800"}]},
            [1, 2, 3],
            [{"a": 1.5, "b": "x"}, {"a": None}, 2, "y", True],
            [{"a": 1.5}, {"a": float("nan")}],
            [{"a": "é"}],
            [{"\ud800": 1}],
            [1.0, float("-inf")],
            [10**5000],
            ["\udfff"],
            [{"a": [1]}],
            [b"bytes"],
            "text",
            None,
        ],
    )
    def test_agrees_with_encode_input(self, value: Any) -> None:
        try:
            encode_input(value)
        except InputEncodingError as exc:
            with pytest.raises(InputEncodingError) as info:
                check_input(value)
            assert str(info.value) == str(exc)
        else:
            assert check_input(value) is None
