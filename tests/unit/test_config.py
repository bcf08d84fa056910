"""Configuration precedence: arguments, environment, profile, embedded default."""

from __future__ import annotations

from pathlib import Path

import pytest

from umlaut_core import ConfigurationError, Umlaut
from umlaut_core.config import resolve_settings
from umlaut_core.stores.folder import FolderArtifactStore
from umlaut_core.stores.memory import MemoryArtifactStore, MemoryTracker
from umlaut_core.testing.models import Threshold

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


LOCAL_PYPROJECT = """
[tool.umlaut.profiles.local]
tracking_uri = "sqlite:///.umlaut/umlaut.db?timeout=5"
artifact_uri = ".umlaut/artifacts"
spool_path = "spool/audit.db"

[tool.umlaut.profiles.files]
tracking_uri = "mlflow+sqlite:///mlruns/mlflow.db"
artifact_uri = "file:store/bundles"

[tool.umlaut.profiles.absolute]
tracking_uri = "sqlite:////srv/umlaut.db"
artifact_uri = "~/bundles"

[tool.umlaut.profiles.memory]
tracking_uri = "memory:"
artifact_uri = "bundles"
"""


@pytest.fixture
def local_project(tmp_path: Path) -> tuple[Path, Path]:
    """A project whose profiles use relative paths, and a subfolder to run from."""
    root = tmp_path / "project"
    nested = root / "notebooks" / "deep"
    nested.mkdir(parents=True)
    (root / "pyproject.toml").write_text(LOCAL_PYPROJECT)
    return root, nested


class TestProfileRelativePaths:
    """A profile's relative paths are read from its pyproject.toml's folder."""

    def test_sqlite_folder_and_spool_from_a_subfolder(
        self, local_project: tuple[Path, Path]
    ) -> None:
        root, nested = local_project
        s = resolve_settings(profile="local", environ={}, cwd=nested)
        assert s.tracking_uri == f"sqlite:///{root / '.umlaut' / 'umlaut.db'}?timeout=5"
        assert s.artifact_uri == str(root / ".umlaut" / "artifacts")
        assert s.spool_path == str(root / "spool" / "audit.db")
        for key in ("tracking_uri", "artifact_uri", "spool_path"):
            assert s.sources[key] == f"profile local (relative path resolved against {root})"
        # arguments and the environment stay relative to the working directory
        s = resolve_settings(profile="local", environ={"UMLAUT_ARTIFACT_URI": "here"}, cwd=nested)
        assert s.artifact_uri == "here"

    def test_mlflow_sqlite_and_file_uris(self, local_project: tuple[Path, Path]) -> None:
        root, nested = local_project
        s = resolve_settings(profile="files", environ={}, cwd=nested)
        assert s.tracking_uri == f"mlflow+sqlite:///{root / 'mlruns' / 'mlflow.db'}"
        assert s.artifact_uri == (root / "store" / "bundles").as_uri()
        # absolute paths, "~" and other schemes are left alone
        s = resolve_settings(profile="absolute", environ={}, cwd=nested)
        assert (s.tracking_uri, s.artifact_uri) == ("sqlite:////srv/umlaut.db", "~/bundles")
        assert s.sources["tracking_uri"] == "profile absolute"

    def test_umlaut_from_a_subfolder_uses_the_same_store(
        self, local_project: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        root, nested = local_project
        for var in ("UMLAUT_TRACKING_URI", "UMLAUT_ARTIFACT_URI", "UMLAUT_HOME"):
            monkeypatch.delenv(var, raising=False)
        monkeypatch.chdir(nested)
        with Umlaut(profile="memory") as um:
            um.track_model(Threshold(1), "m")
        assert list((root / "bundles").rglob("*.zip"))
        assert not (nested / "bundles").exists()


class TestUmlautHome:
    """UMLAUT_HOME must be a folder; a file is refused before anything is created."""

    def test_home_is_a_file(self, tmp_path: Path) -> None:
        home = tmp_path / "home"
        home.write_text("not a folder")
        with pytest.raises(ConfigurationError, match="UMLAUT_HOME") as info:
            resolve_settings(environ={"UMLAUT_HOME": str(home)}, cwd=tmp_path)
        assert str(home) in str(info.value) and "folder" in str(info.value)
        # only a home that is used is checked
        s = resolve_settings("memory:", environ={"UMLAUT_HOME": str(home)}, cwd=tmp_path)
        assert s.tracking_uri == "memory:"

    def test_home_inside_a_file(self, tmp_path: Path) -> None:
        (tmp_path / "f").write_text("x")
        with pytest.raises(ConfigurationError, match=r"UMLAUT_HOME.*inside"):
            resolve_settings(environ={"UMLAUT_HOME": str(tmp_path / "f" / "h")}, cwd=tmp_path)

    def test_umlaut_creates_nothing(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        home = tmp_path / "home"
        home.write_text("not a folder")
        monkeypatch.chdir(tmp_path)
        for var in ("UMLAUT_TRACKING_URI", "UMLAUT_ARTIFACT_URI", "UMLAUT_PROFILE"):
            monkeypatch.delenv(var, raising=False)
        monkeypatch.setenv("UMLAUT_HOME", str(home))
        with pytest.raises(ConfigurationError, match="UMLAUT_HOME"):
            Umlaut()
        assert sorted(p.name for p in tmp_path.iterdir()) == ["home"]


class TestStoreOptions:
    """Stores that take no options refuse any, naming them and the known ones (none)."""

    def test_folder_store_typo(self, tmp_path: Path) -> None:
        with pytest.raises(ConfigurationError, match=r"\['endpiont_url'\].*known: none"):
            Umlaut(tracker=MemoryTracker(), artifact_uri=str(tmp_path / "a"),
                   artifact_options={"endpiont_url": "http://x"})  # fmt: skip
        assert not (tmp_path / "a").exists()

    def test_memory_tracker_and_store(self) -> None:
        with pytest.raises(ConfigurationError, match=r"\['busy_timeout'\].*known: none"):
            Umlaut("memory:", tracker_options={"busy_timeout": 3})
        with pytest.raises(ConfigurationError, match=r"\['colour'\].*known: none"):
            MemoryArtifactStore(colour="blue")

    def test_option_values_are_not_shown(self, tmp_path: Path) -> None:
        with pytest.raises(ConfigurationError) as info:
            FolderArtifactStore(str(tmp_path), aws_secret_access_key="Zm9v/YmFy+cXV4")
        assert "Zm9v" not in str(info.value)


class TestSettingsRepr:
    """repr(Settings) shows URIs redacted and options masked, whatever the password."""

    @pytest.mark.parametrize("password", ["Zm9v/YmFy+cXV4", "p@ss#w?rd:x"])
    def test_odd_passwords(self, password: str) -> None:
        s = resolve_settings(
            f"postgresql+psycopg://u:{password}@db.internal/umlaut?sslpassword=k3y-Secret",
            "s3://b/p",
            options={"tracker_options": {"connect_args": {"password": password}}},
            environ={},
        )
        shown = repr(s) + str(s.sources)
        assert password not in shown and "k3y-Secret" not in shown
        assert "db.internal/umlaut" in shown
