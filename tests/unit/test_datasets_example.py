"""examples/datasets_flow.py runs end to end in a process of its own and prints what
it should: the profile, the refused input, the lineage and the shifted features'
drift."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import pytest

from umlaut_core import Umlaut

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "datasets_flow.py"


class Ran(NamedTuple):
    uri: str
    output: str


FEATURES = ("sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)")


@pytest.fixture(scope="module")
def ran(tmp_path_factory: pytest.TempPathFactory) -> Ran:
    """The example run once, on a fresh SQLite file: its URI and standard output."""
    pytest.importorskip("sklearn")
    pytest.importorskip("pyarrow")
    folder = tmp_path_factory.mktemp("datasets-example")
    uri = f"sqlite:///{folder / 'example.db'}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("UMLAUT_")}
    done = subprocess.run(
        [sys.executable, str(EXAMPLE), uri],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return Ran(uri, done.stdout)


@pytest.fixture
def output(ran: Ran) -> str:
    return ran.output


def feature_row(text: str, heading: str, name: str) -> list[str]:
    """The cells of ``name``'s row in the table under ``## heading``."""
    section = text.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells[0] == name:
            return cells
    raise AssertionError(f"no row {name!r} under {heading!r}:\n{section}")


@pytest.mark.slow
class TestDatasetsExample:
    """examples/datasets_flow.py: iris tracked, trained on, checked, traced and drifted."""

    def test_prints_the_column_table(self, output: str) -> None:
        assert re.search(r"\*\*iris\*\* v1 · 150 rows · 5 columns · sha256:[0-9a-f]{64}", output)
        assert "| column | role | type | dtype |" in output
        for name in FEATURES:
            assert f"| {name} | feature | float | float64 |" in output
        assert "| species | target | category | category |" in output

    def test_predictions_carry_reference_ids(self, output: str) -> None:
        assert re.search(r"order-1 \(a DataFrame of 2 rows\) -> \['setosa', '\w+'\]", output)
        assert re.search(r"order-2 \(a dict row\) +-> virginica", output)

    def test_the_malformed_input_is_refused_naming_every_problem(self, output: str) -> None:
        refused = next(line for line in output.splitlines() if line.startswith("refused"))
        assert "(3 problems)" in refused
        assert "column 'petal width (cm)' is missing" in refused
        assert "unknown column 'sepal widht (cm)' (did you mean 'sepal width (cm)'?)" in refused
        assert "5.1" not in refused  # messages never echo the input's values
        assert (
            "audited as status='error', error_type=umlaut_core.exceptions.InputValidationError"
            in output
        )

    def test_lineage_goes_from_a_prediction_to_its_run_and_dataset(self, output: str) -> None:
        lineage = output.split("lineage of order-2", 1)[1].split("\n\n", 1)[0]
        assert "answered by  Iris Classifier v1 (sha256:" in lineage
        assert re.search(r"trained in   run \w+ of experiment 'iris' \{'train_accuracy'", lineage)
        assert "learned from dataset iris v1 as 'train' (model_version, v1)" in lineage
        assert "learned from dataset iris v1 as 'training' (training_run, run " in lineage

    def test_shifted_calls_carry_out_of_range_findings(self, output: str) -> None:
        assert re.search(
            r"\d+ of the shifted calls carry soft findings, e\.g\. column '(petal length|petal "
            r"width) \(cm\)' has a value outside the training range",
            output,
        )

    def test_the_report_flags_the_shifted_features(self, output: str) -> None:
        report = output.split("# Drift report: Iris Classifier v1", 1)[1]
        assert "Reference: dataset iris v1 (training data)." in report
        assert "**Verdict: drift**: 2 of 4 judged features alert" in report
        for name in ("petal length (cm)", "petal width (cm)"):
            assert feature_row(report, "Features", name)[1] == "alert"
        for name in ("sepal length (cm)", "sepal width (cm)"):
            assert feature_row(report, "Features", name)[1] == "ok"
        # PSI well past the alert level of 0.25, not a borderline call
        assert float(feature_row(report, "Features", "petal length (cm)")[3]) > 1
        assert feature_row(report, "Predictions", "prediction")[1] == "alert"

    def test_the_store_keeps_what_the_example_printed(self, ran: Ran) -> None:
        with Umlaut(ran.uri) as um:
            (refused,) = um.history("Iris Classifier", reference_id="order-3")
            assert refused.status == "error"
            assert refused.error_type == "umlaut_core.exceptions.InputValidationError"
            lineage = um.lineage(reference_id="order-2")
            assert lineage.training_run is not None
            assert {(d.dataset_name, d.context) for d in lineage.datasets} == {
                ("iris", "train"),
                ("iris", "training"),
            }
            assert um.get_dataset("iris").load().shape == (150, 5)
