"""The server's pure parts, without a server: request shapes, tensors, tokens,
content types, the Deadline's outcome, configuration errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from umlaut_server import ServeConfig, hash_token
from umlaut_server._auth import parse_tokens
from umlaut_server._body import media_type, parse_csv
from umlaut_server._config import ModelSpec, parse_model_spec
from umlaut_server._errors import ApiError
from umlaut_server._mlflow import model_input
from umlaut_server._v2 import rows_from_request, tensors_from_output

from umlaut_core.cli import make_cli
from umlaut_core.exceptions import ConfigurationError


class TestShapes:
    """MLflow and V2 request bodies become the documented model inputs."""

    def test_split_without_columns_and_with_index(self) -> None:
        assert model_input({"dataframe_split": {"data": [[1, 2]]}}) == ([[1, 2]], None)
        rows, params = model_input(
            {"dataframe_split": {"columns": ["a"], "data": [[1]], "index": [7]}, "params": {"k": 1}}
        )
        assert (rows, params) == ([{"a": 1}], {"k": 1})

    @pytest.mark.parametrize(
        "body",
        [{}, {"inputs": 1, "foo": 2}, {"dataframe_records": [1]}, {"dataframe_split": {"x": 1}}],
    )
    def test_refused(self, body: dict[str, object]) -> None:
        with pytest.raises(ApiError) as info:
            model_input(body)
        assert info.value.status == 400

    def test_v2_columns_matrix_and_errors(self) -> None:
        rows, rid = rows_from_request(
            {
                "id": "x",
                "inputs": [
                    {"name": "a", "shape": [2], "datatype": "INT64", "data": [1, 2]},
                    {"name": "b", "shape": [2, 1], "datatype": "BYTES", "data": [["p"], ["q"]]},
                ],
            }
        )
        assert (rows, rid) == ([{"a": 1, "b": "p"}, {"a": 2, "b": "q"}], "x")
        matrix, _ = rows_from_request(
            {"inputs": [{"name": "m", "shape": [2, 2], "datatype": "FP64", "data": [1, 2, 3, 4]}]}
        )
        assert matrix == [[1, 2], [3, 4]]
        with pytest.raises(ApiError, match="holds 3 values"):
            rows_from_request(
                {"inputs": [{"name": "m", "shape": [3], "datatype": "FP64", "data": [1, 2]}]}
            )

    def test_v2_outputs(self) -> None:
        assert tensors_from_output([1.5, 2]) == [
            {"name": "predictions", "datatype": "FP64", "shape": [2], "data": [1.5, 2]}
        ]
        by_key = tensors_from_output([{"p": "a", "q": {"x": 1}}])
        assert [t["name"] for t in by_key] == ["p", "q"] and by_key[1]["data"] == ['{"x": 1}']
        assert tensors_from_output({"k": 1})[0]["name"] == "output"

    def test_csv_and_content_types(self) -> None:
        assert parse_csv(b"a,b\n01,null\n") == [{"a": "01", "b": None}]
        assert media_type("Application/JSON; charset=UTF-8", ("application/json",)) == (
            "application/json"
        )
        for bad in (None, "text/csv", "application/json; charset=utf-16"):
            with pytest.raises(ApiError) as info:
                media_type(bad, ("application/json",))
            assert info.value.status == 415


class TestTokens:
    """Token entries are hashes with scopes; bad entries are named without their text."""

    def test_scopes_and_merge(self) -> None:
        entries = f"{hash_token('a')}=run # first\n{hash_token('b')}=read;{hash_token('a')}=read"
        tokens = parse_tokens([("test", entries)])
        assert tokens.scopes_of("a") == {"run", "read"}
        assert tokens.scopes_of("b") == {"read"}
        assert tokens.scopes_of("c") is None

    @pytest.mark.parametrize("entry", ["plain-token=run", f"{hash_token('a')}=write"])
    def test_refused_entries(self, entry: str) -> None:
        with pytest.raises(ConfigurationError) as info:
            parse_tokens([("UMLAUT_SERVE_TOKENS", entry)])
        assert "entry 1 of UMLAUT_SERVE_TOKENS" in str(info.value)
        assert entry.split("=")[0] not in str(info.value)


class TestConfig:
    """Model specs, the JSON a worker receives, and what `umlaut serve` refuses."""

    def test_model_specs(self) -> None:
        assert parse_model_spec("Iris") == ModelSpec("Iris")
        assert parse_model_spec("Iris@3") == ModelSpec("Iris", version=3)
        assert parse_model_spec("a@b@Production") == ModelSpec("a@b", stage="Production")

    def test_round_trip(self) -> None:
        config = ServeConfig(
            models=(ModelSpec("Iris", stage="Production"),),
            tokens=parse_tokens([("t", f"{hash_token('a')}=run")]),
            batch_rows=64,
        )
        assert ServeConfig.from_json(config.to_json()) == config

    def test_batch_rows(self) -> None:
        assert ServeConfig().batch_rows == 0  # dynamic batching is opt-in
        refused = CliRunner().invoke(
            make_cli(), ["--tracking-uri", "memory:", "serve", "--model", "A", "--no-auth",
                         "--batch-rows", "-1"],
        )  # fmt: skip
        assert refused.exit_code == 1 and "--batch-rows" in refused.output

    def test_serve_refuses_without_tokens_or_models(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.delenv("UMLAUT_SERVE_TOKENS", raising=False)
        runner = CliRunner()
        no_tokens = runner.invoke(
            make_cli(), ["--tracking-uri", "memory:", "serve", "--model", "A"]
        )
        assert no_tokens.exit_code == 1 and "--no-auth" in no_tokens.output
        no_models = runner.invoke(make_cli(), ["--tracking-uri", "memory:", "serve", "--no-auth"])
        assert no_models.exit_code == 1 and "--all-models" in no_models.output

    def test_hash_token_reads_stdin(self) -> None:
        result = CliRunner().invoke(make_cli(), ["serve", "hash-token"], input="secret\n")
        assert result.exit_code == 0 and result.output.strip() == hash_token("secret")


class TestTokenSources:
    """Tokens come from the environment, pyproject.toml (and a profile's table) and a file."""

    def test_sources_are_merged(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        from umlaut_server._cli import build_config

        from umlaut_core.cli import CliContext

        (tmp_path / "pyproject.toml").write_text(
            "[tool.umlaut.serve]\n"
            f'tokens = ["{hash_token("py")}=read"]\n'
            "[tool.umlaut.serve.profiles.prod]\n"
            'tokens = "${PROD_ENTRY}"\n'
        )
        (tmp_path / "tokens.txt").write_text(f"# ops\n{hash_token('file')}=run\n")
        monkeypatch.chdir(tmp_path)
        monkeypatch.setenv("UMLAUT_SERVE_TOKENS", f"{hash_token('env')}=run,read")
        monkeypatch.setenv("PROD_ENTRY", f"{hash_token('prod')}=run")
        state = CliContext(tracking_uri="memory:", artifact_uri=None, profile="prod", verbose=False)
        options = {
            "models": ("A",), "all_models": False, "default_stage": None, "host": "127.0.0.1",
            "port": 1, "workers": 1, "threads": 1, "tokens_file": tmp_path / "tokens.txt",
            "no_auth": False, "max_body_size": 10, "max_batch": 1, "batch_rows": 0, "timeout": 1.0,
            "body_timeout": 1.0, "resolve_ttl": None, "graceful_timeout": 1.0,
            "access_log": "off", "root_path": "", "proxy_headers": False,
            "forwarded_allow_ips": "127.0.0.1",
        }  # fmt: skip
        tokens = build_config(state, options).tokens
        assert tokens.scopes_of("env") == {"run", "read"}
        assert tokens.scopes_of("py") == {"read"}
        assert tokens.scopes_of("prod") == {"run"}
        assert tokens.scopes_of("file") == {"run"}


class TestInputSchemas:
    """A version's signature as a JSON Schema for one row (OpenAPI, V2 metadata)."""

    def test_table_signature(self) -> None:
        from umlaut_server._schemas import input_schema
        from umlaut_server._v2 import _datatype_of_schema

        signature = {
            "format": "umlaut.table/1",
            "columns": [
                {"name": "age", "type": "integer", "nullable": True, "min": 18, "max": 90,
                 "categories": None},
                {"name": "plan", "type": "category", "nullable": False, "min": None,
                 "max": None, "categories": ["basic", "pro"]},
                {"name": "since", "type": "date", "nullable": False, "min": None, "max": None,
                 "categories": None},
                {"name": "blob", "type": "other", "nullable": False, "min": None, "max": None,
                 "categories": None},
            ],
        }  # fmt: skip
        schema = input_schema(signature)
        assert schema is not None and schema["required"] == ["age", "plan", "since", "blob"]
        age, plan, since, blob = (schema["properties"][c] for c in schema["required"])
        assert age["type"] == ["integer", "null"] and "min 18" in age["description"]
        assert plan["type"] == "string" and "basic" in plan["description"]  # soft: no enum
        assert since == {"type": "string", "format": "date"} and blob == {}
        datatypes = [_datatype_of_schema(schema["properties"][c]) for c in schema["required"]]
        assert datatypes == ["INT64", "BYTES", "BYTES", "BYTES"]
        assert input_schema({"v": "float"})["properties"] == {"v": {"type": "number"}}
        assert input_schema({"note": "trained on March data"}) is None  # prose, not columns
        assert input_schema({"columns": [1, 2]}) is None and input_schema(None) is None
