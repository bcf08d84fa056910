"""The MLflow pyfunc wrapper stored with every version umlaut tracks.

``mlflow.pyfunc.load_model("models:/<name>@<alias>").predict(x)`` unpacks the
umlaut bundle kept in the model's artifacts (``artifacts/bundle.zip``), verifying its
digest like ``run_model`` does, and returns exactly what ``run_model`` returns.
Only imported where MLflow is (the tracker, or MLflow loading the model).
"""

from __future__ import annotations

from typing import Any

from ._compat import import_mlflow

__all__ = ["BUNDLE_ARTIFACT", "UmlautPythonModel"]

BUNDLE_ARTIFACT = "bundle"
_mlflow = import_mlflow()


class UmlautPythonModel(_mlflow.pyfunc.PythonModel):  # type: ignore[misc,name-defined]
    """Runs an umlaut bundle as an MLflow pyfunc model."""

    # MLflow 3 wraps predict to validate input against its type hints and warns when
    # there are none. umlaut models take any JSON-like input, so validation is off
    # (the switch MLflow's own ChatModel uses).
    _skip_type_hint_validation = True

    def load_context(self, context: Any) -> None:
        from pathlib import Path

        from umlaut_core import get_plugin_manager
        from umlaut_core.packer import read_manifest, unpack

        data = Path(context.artifacts[BUNDLE_ARTIFACT]).read_bytes()
        digest = read_manifest(data).get("digest")
        self._loaded = unpack(data, get_plugin_manager(), expected_digest=digest, env_policy="warn")

    def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]
        return self._loaded.run(model_input)
