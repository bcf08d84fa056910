"""Configuration precedence: arguments, environment, profile, embedded default."""

from __future__ import annotations

from pathlib import Path

import pytest

from umlaut_core import ConfigurationError, Umlaut
from umlaut_core.config import resolve_settings

PYPROJECT = """
[tool.umlaut.profiles.dev]
tracking_uri = "memory:"
artifact_uri = "memory:"

[tool.umlaut.profiles.team]
tracking_uri = "postgresql+psycopg://umlaut:${DB_PASSWORD}@db.internal/umlaut"
artifact_uri = "s3://models/umlaut"
env_policy = "strict"

[tool.umlaut.profiles.broken]
tracking_uri = "memory:"
colour = "blue"
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "pyproject.toml").write_text(PYPROJECT)
    nested = tmp_path / "notebooks" / "deep"
    nested.mkdir(parents=True)
    return nested


class TestPrecedence:
    """The strongest source wins, per setting."""

    def test_embedded_default_uses_umlaut_home(self, tmp_path: Path) -> None:
        s = resolve_settings(environ={"UMLAUT_HOME": str(tmp_path / "h")}, cwd=tmp_path)
        assert s.tracking_uri == f"sqlite:///{tmp_path / 'h' / 'umlaut.db'}"
        assert s.artifact_uri == str(tmp_path / "h" / "artifacts")
        assert s.sources["tracking_uri"] == "default"

    def test_default_home_is_dot_umlaut(self, tmp_path: Path) -> None:
        s = resolve_settings(environ={}, cwd=tmp_path)
        assert s.tracking_uri == "sqlite:///.umlaut/umlaut.db"
        assert s.artifact_uri == ".umlaut/artifacts"

    def test_environment_beats_profile(self, project: Path) -> None:
        env = {"UMLAUT_PROFILE": "dev", "UMLAUT_TRACKING_URI": "memory://env"}
        s = resolve_settings(environ=env, cwd=project)
        assert (s.tracking_uri, s.artifact_uri) == ("memory://env", "memory:")
        assert s.sources == {
            **s.sources,
            "tracking_uri": "environment",
            "artifact_uri": "profile dev",
        }

    def test_arguments_beat_environment(self, project: Path) -> None:
        env = {"UMLAUT_TRACKING_URI": "memory://env", "UMLAUT_ARTIFACT_URI": "memory://a"}
        s = resolve_settings("memory://arg", environ=env, cwd=project)
        assert (s.tracking_uri, s.artifact_uri) == ("memory://arg", "memory://a")

    def test_profile_argument_beats_profile_variable(self, project: Path) -> None:
        env = {"UMLAUT_PROFILE": "team", "DB_PASSWORD": "pw"}
        assert resolve_settings(profile="dev", environ=env, cwd=project).tracking_uri == "memory:"

    def test_profile_expands_variables(self, project: Path) -> None:
        s = resolve_settings(profile="team", environ={"DB_PASSWORD": "s3cr3t"}, cwd=project)
        assert s.tracking_uri == "postgresql+psycopg://umlaut:s3cr3t@db.internal/umlaut"
        assert (s.artifact_uri, s.env_policy) == ("s3://models/umlaut", "strict")

    def test_umlaut_reads_profile_from_nearest_pyproject(
        self, project: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.chdir(project)
        monkeypatch.setenv("UMLAUT_PROFILE", "dev")
        umlaut = Umlaut()
        assert umlaut.tracker.uri == "memory:"
        assert umlaut.artifact_store is not None and umlaut.artifact_store.uri == "memory:"


class TestConfigurationErrors:
    """Bad configuration is refused with what exists and what to do."""

    def test_unknown_profile_lists_defined_ones(self, project: Path) -> None:
        with pytest.raises(ConfigurationError, match=r"profile 'prod' is not defined") as info:
            resolve_settings(profile="prod", environ={}, cwd=project)
        assert "['broken', 'dev', 'team']" in str(info.value)

    def test_missing_variable_is_named(self, project: Path) -> None:
        with pytest.raises(ConfigurationError, match=r"\$\{DB_PASSWORD\}"):
            resolve_settings(profile="team", environ={}, cwd=project)

    def test_unknown_profile_key(self, project: Path) -> None:
        with pytest.raises(ConfigurationError, match="colour"):
            resolve_settings(profile="broken", environ={}, cwd=project)

    def test_unknown_option(self) -> None:
        with pytest.raises(ConfigurationError, match=r"unknown option\(s\) \['colour'\]"):
            Umlaut("memory:", colour="blue")

    def test_bad_env_policy(self) -> None:
        with pytest.raises(ConfigurationError, match="env_policy"):
            Umlaut("memory:", env_policy="sometimes")

    def test_original_api_keywords_are_accepted(self) -> None:
        umlaut = Umlaut(tracking_server="memory:", folder_name="ignored")
        assert umlaut.tracker.uri == "memory:"
