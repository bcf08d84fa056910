"""examples/pipeline_decorator.py with only the URI changed: on a real MLflow server,
MLflow's own client sees each execution as a parent run with its three step runs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("mlflow")
pytest.importorskip("sklearn")

pytestmark = pytest.mark.mlflow
EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "pipeline_decorator.py"


def test_the_mlflow_ui_sees_parents_with_three_children(mlflow_server: str, tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    env = {k: v for k, v in os.environ.items() if not k.startswith("UMLAUT_")}
    env["UMLAUT_HOME"] = str(tmp_path / "home")  # the spool lives here
    done = subprocess.run(
        [sys.executable, str(EXAMPLE), f"mlflow+{mlflow_server}"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    client = MlflowClient(tracking_uri=mlflow_server)
    experiment = client.get_experiment_by_name("iris-pipeline")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    by_id = {r.info.run_id: r for r in runs}
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) >= 2
    for parent in parents[:2]:
        children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
        names = sorted(r.data.tags.get("mlflow.runName", "") for r in children)
        assert names == ["classify", "reduce", "scale"], names
        assert parent.info.status == "FINISHED"
        assert "accuracy" in parent.data.metrics
        assert all(c.info.status == "FINISHED" for c in children)
    assert len(by_id) == len(runs)
