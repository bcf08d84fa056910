"""The packer on its own: deterministic bundles, verified loading, flavors, policies."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path
from typing import Any

import pluggy
import pytest

from umlaut_core import EnvironmentMismatchError, IntegrityError, UnsupportedModelError
from umlaut_core.packer import UmlautEnvironmentWarning, compute_digest, pack, read_manifest, unpack
from umlaut_core.testing.models import ExampleModel, Threshold, double


def _rezip(
    data: bytes, manifest: dict[str, Any] | None = None, payload: bytes | None = None
) -> bytes:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        old_manifest = json.loads(zf.read("MANIFEST.json"))
        old_payload = zf.read("payload.pkl")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("MANIFEST.json", json.dumps(manifest or old_manifest))
        zf.writestr("payload.pkl", old_payload if payload is None else payload)
    return buf.getvalue()


class _Boom:
    """Unpickling this would create a file: proof that a refused bundle is never run."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> Any:
        return (Path.touch, (Path(self.path),))

    def run(self, data: Any) -> Any:
        return data


class TestPack:
    """pack() gives deterministic, self-describing bundles."""

    def test_same_object_same_bytes_and_digest(self, plugin_manager: pluggy.PluginManager) -> None:
        a, b = pack(Threshold(3), plugin_manager), pack(Threshold(3), plugin_manager)
        assert a.data == b.data and a.digest == b.digest
        assert pack(Threshold(4), plugin_manager).digest != a.digest

    def test_manifest_describes_the_bundle(self, plugin_manager: pluggy.PluginManager) -> None:
        bundle = pack(ExampleModel(), plugin_manager, signature={"revenue": "int"})
        manifest = read_manifest(bundle.data)
        assert manifest["flavor"] == "python-class" and manifest["entry"] == "run"
        assert manifest["object"] == "umlaut_core.testing.models:ExampleModel"
        assert manifest["signature"] == {"revenue": "int"}
        assert manifest["python"].count(".") == 2 and manifest["cloudpickle"]
        assert manifest["digest"] == bundle.digest == compute_digest(manifest)

    def test_digest_is_stable_across_processes(self, plugin_manager: pluggy.PluginManager) -> None:
        code = (
            "from umlaut_core import get_plugin_manager;"
            "from umlaut_core.packer import pack;"
            "from umlaut_core.testing.models import Threshold;"
            "print(pack(Threshold(3), get_plugin_manager()).digest)"
        )
        env = {**os.environ, "PYTHONHASHSEED": "123"}
        other = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, env=env
        )
        assert other.stdout.strip() == pack(Threshold(3), plugin_manager).digest, other.stderr

    def test_unsupported_objects_say_what_to_do(self, plugin_manager: pluggy.PluginManager) -> None:
        with pytest.raises(UnsupportedModelError, match="give it a run"):
            pack(42, plugin_manager)
        with pytest.raises(UnsupportedModelError, match=r"pass an instance, e.g. ExampleModel\(\)"):
            pack(ExampleModel, plugin_manager)


class TestUnpack:
    """unpack() verifies every hash before unpickling anything."""

    def test_round_trip_runs(self, plugin_manager: pluggy.PluginManager) -> None:
        bundle = pack(double, plugin_manager)
        loaded = unpack(bundle.data, plugin_manager, expected_digest=bundle.digest)
        assert loaded.run({"x": 4}) == 8 and loaded.digest == bundle.digest

    def test_changed_payload_byte_is_refused_before_unpickling(
        self, plugin_manager: pluggy.PluginManager, tmp_path: Path
    ) -> None:
        marker = tmp_path / "unpickled"
        bundle = pack(Threshold(1), plugin_manager)
        evil = _rezip(bundle.data, payload=__import__("pickle").dumps(_Boom(str(marker))))
        with pytest.raises(IntegrityError, match="does not match its manifest"):
            unpack(evil, plugin_manager, expected_digest=bundle.digest)
        assert not marker.exists()

    def test_swapped_bundle_is_refused(self, plugin_manager: pluggy.PluginManager) -> None:
        one, two = pack(Threshold(1), plugin_manager), pack(Threshold(2), plugin_manager)
        with pytest.raises(IntegrityError, match="swapped or tampered"):
            unpack(two.data, plugin_manager, expected_digest=one.digest)

    @pytest.mark.parametrize("cut", [0, 10, 100, -10])
    def test_truncated_bundle_is_refused(
        self, plugin_manager: pluggy.PluginManager, cut: int
    ) -> None:
        bundle = pack(Threshold(1), plugin_manager)
        with pytest.raises(IntegrityError):
            unpack(bundle.data[:cut], plugin_manager, expected_digest=bundle.digest)

    def test_environment_policies(self, plugin_manager: pluggy.PluginManager) -> None:
        bundle = pack(ExampleModel(), plugin_manager)
        manifest = dict(read_manifest(bundle.data), python="2.7.18")
        old = _rezip(bundle.data, manifest=manifest)
        with pytest.raises(EnvironmentMismatchError, match=r"Python 2\.7"):
            unpack(old, plugin_manager, expected_digest=bundle.digest, env_policy="strict")
        with pytest.warns(UmlautEnvironmentWarning, match=r"Python 2\.7"):
            unpack(old, plugin_manager, expected_digest=bundle.digest, env_policy="warn")
        loaded = unpack(old, plugin_manager, expected_digest=bundle.digest, env_policy="ignore")
        assert loaded.run({"revenue": 9}) is True


class TestFreshProcess:
    """Code from a user's script or folder loads where that code is absent."""

    def test_main_class_loads_without_the_script(self, tmp_path: Path) -> None:
        script = tmp_path / "make.py"
        script.write_text(
            textwrap.dedent("""
            import sys
            from umlaut_core import get_plugin_manager
            from umlaut_core.packer import pack
            class Local:
                def run(self, data):
                    return {"seen": data["v"] * 3}
            bundle = pack(Local(), get_plugin_manager())
            open(sys.argv[1], "wb").write(bundle.data)
            print(bundle.digest)
        """)
        )
        out = tmp_path / "b.zip"
        made = subprocess.run(
            [sys.executable, str(script), str(out)], capture_output=True, text=True
        )
        assert made.returncode == 0, made.stderr
        # Re-running the unchanged script must give the same digest (dedupe).
        env = {**os.environ, "PYTHONHASHSEED": "7"}
        again = subprocess.run(
            [sys.executable, str(script), str(tmp_path / "again.zip")],
            capture_output=True,
            text=True,
            env=env,
        )
        assert again.stdout == made.stdout, again.stderr
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        load = (
            "import sys; from umlaut_core import get_plugin_manager;"
            "from umlaut_core.packer import unpack;"
            "data = open(sys.argv[1], 'rb').read();"
            "l = unpack(data, get_plugin_manager(), expected_digest=sys.argv[2]);"
            "print(l.run({'v': 5}))"
        )
        ran = subprocess.run(
            [sys.executable, "-c", load, str(out), made.stdout.strip()],
            capture_output=True,
            text=True,
            cwd=elsewhere,
        )
        assert ran.stdout.strip() == "{'seen': 15}", ran.stderr

    def test_user_module_and_code_path_are_packed_by_value(
        self, tmp_path: Path, plugin_manager: pluggy.PluginManager
    ) -> None:
        pkg = tmp_path / "src"
        pkg.mkdir()
        (pkg / "helpers_mod.py").write_text("def scale(x):\n    return x * 10\n")
        (pkg / "user_model_mod.py").write_text(
            "import helpers_mod\n"
            "class M:\n"
            "    def run(self, d):\n"
            "        return helpers_mod.scale(d['x'])\n"
        )
        sys.path.insert(0, str(pkg))
        try:
            import user_model_mod  # type: ignore[import-not-found]

            bundle = pack(user_model_mod.M(), plugin_manager, code_paths=[str(pkg)])
        finally:
            sys.path.remove(str(pkg))
            for name in ("user_model_mod", "helpers_mod"):
                sys.modules.pop(name, None)
        out = tmp_path / "b.zip"
        out.write_bytes(bundle.data)
        load = (
            "import sys; from umlaut_core import get_plugin_manager;"
            "from umlaut_core.packer import unpack;"
            "data = open(sys.argv[1], 'rb').read();"
            "l = unpack(data, get_plugin_manager(), expected_digest=None);"
            "print(l.run({'x': 4}))"
        )
        ran = subprocess.run([sys.executable, "-c", load, str(out)], capture_output=True, text=True)
        assert ran.stdout.strip() == "40", ran.stderr


class TestSklearnFlavor:
    """Fitted estimators run on dict or list-of-dict rows by feature name."""

    def test_classifier_with_feature_names(self, plugin_manager: pluggy.PluginManager) -> None:
        pd = pytest.importorskip("pandas")
        linear_model = pytest.importorskip("sklearn.linear_model")
        frame = pd.DataFrame({"revenue": [1.0, 2.0, 8.0, 9.0], "cost": [1.0, 1.0, 1.0, 2.0]})
        model = linear_model.LogisticRegression().fit(frame, [0, 0, 1, 1])
        bundle = pack(model, plugin_manager)
        assert bundle.flavor == "sklearn"
        loaded = unpack(bundle.data, plugin_manager, expected_digest=bundle.digest)
        one = loaded.run({"cost": 1.0, "revenue": 9.5})
        assert one["prediction"] == 1 and set(one["probabilities"]) == {"0", "1"}
        assert sum(one["probabilities"].values()) == pytest.approx(1.0)
        many = loaded.run([{"revenue": 0.5, "cost": 1.0}, {"revenue": 9.0, "cost": 2.0}])
        assert [m["prediction"] for m in many] == [0, 1]
        with pytest.raises(KeyError, match="cost"):
            loaded.run({"revenue": 1.0})

    def test_regressor_without_predict_proba(self, plugin_manager: pluggy.PluginManager) -> None:
        linear_model = pytest.importorskip("sklearn.linear_model")
        model = linear_model.LinearRegression().fit([[0.0], [1.0], [2.0]], [0.0, 2.0, 4.0])
        bundle = pack(model, plugin_manager)
        loaded = unpack(bundle.data, plugin_manager, expected_digest=bundle.digest)
        (row,) = loaded.run([[3.0]])
        assert row["prediction"] == pytest.approx(6.0) and "probabilities" not in row
        with pytest.raises(ValueError, match="without feature names"):
            loaded.run({"x": 1.0})


class TestSigning:
    """With a signing key, unsigned or wrongly signed bundles are refused."""

    KEY = b"k" * 32

    def test_signed_bundle_loads_and_keeps_its_digest(
        self, plugin_manager: pluggy.PluginManager
    ) -> None:
        signed = pack(Threshold(1), plugin_manager, signing_key=self.KEY)
        assert signed.digest == pack(Threshold(1), plugin_manager).digest
        loaded = unpack(
            signed.data, plugin_manager, expected_digest=signed.digest, signing_key=self.KEY
        )
        assert loaded.run({"x": 2})["above"] is True

    def test_unsigned_bundle_is_refused_when_a_key_is_set(
        self, plugin_manager: pluggy.PluginManager
    ) -> None:
        plain = pack(Threshold(1), plugin_manager)
        with pytest.raises(IntegrityError, match="not signed"):
            unpack(plain.data, plugin_manager, expected_digest=plain.digest, signing_key=self.KEY)

    def test_other_key_or_edited_manifest_is_refused(
        self, plugin_manager: pluggy.PluginManager, tmp_path: Path
    ) -> None:
        signed = pack(Threshold(1), plugin_manager, signing_key=self.KEY)
        with pytest.raises(IntegrityError, match="another key"):
            unpack(signed.data, plugin_manager, expected_digest=None, signing_key=b"x" * 32)
        # A forger who rewrites payload and manifest consistently still lacks the key.
        marker = tmp_path / "ran"
        payload = __import__("pickle").dumps(_Boom(str(marker)))
        manifest = dict(read_manifest(signed.data))
        manifest["payload_sha256"] = __import__("hashlib").sha256(payload).hexdigest()
        forged = io.BytesIO()
        with zipfile.ZipFile(io.BytesIO(signed.data)) as src, zipfile.ZipFile(forged, "w") as zf:
            zf.writestr("MANIFEST.json", json.dumps(manifest))
            zf.writestr("payload.pkl", payload)
            zf.writestr("SIGNATURE", src.read("SIGNATURE"))
        with pytest.raises(IntegrityError, match="another key"):
            unpack(forged.getvalue(), plugin_manager, expected_digest=None, signing_key=self.KEY)
        assert not marker.exists()

    def test_umlaut_signs_and_verifies_with_the_configured_key(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        from umlaut_core import ConfigurationError, Umlaut

        monkeypatch.setenv("UMLAUT_SIGNING_KEY", "s" * 32)
        signer = Umlaut("memory:")
        signer.track_model(Threshold(1), "m")
        assert signer.run_model("m", {"x": 5})["above"] is True
        assert "s" * 32 not in repr(signer.settings)
        monkeypatch.setenv("UMLAUT_SIGNING_KEY", "t" * 32)
        other = Umlaut(tracker=signer.tracker)
        with pytest.raises(IntegrityError, match="another key"):
            other.run_model("m", {"x": 5})
        assert len(other.history("m")) == 1
        monkeypatch.setenv("UMLAUT_SIGNING_KEY", "short")
        with pytest.raises(ConfigurationError, match="at least 16"):
            Umlaut("memory:")
