"""Datasets end to end: the flow of mlops-lite's README, on umlaut.

1. The iris data is tracked as a dataset (content digest, per-column profile) and its
   column table printed.
2. A pipeline (StandardScaler → LogisticRegression) is trained in a training run that
   logs the dataset as its input, then tracked, linked to the dataset it learned from
   and promoted. Its input signature comes from the dataset's feature columns.
3. Predictions with reference ids, from a DataFrame and from dict rows.
4. A malformed input (a missing column, a typo'd column name) is refused with one
   error naming every problem; the model never runs, and the refusal is audited.
5. The lineage of one prediction: the version that answered, the run that trained
   it, the data it learned from.
6. Live traffic, then shifted traffic (petals measured 2 cm longer and 0.8 cm wider)
   through ``run_batch``, and the drift report of the shifted window as Markdown.

Runs on the embedded default (``.umlaut/`` in the working directory) or on any
tracking URI given as the first argument or in ``UMLAUT_TRACKING_URI``::

    pip install "./[datasets]" ./plugins/umlaut-sql scikit-learn
    python examples/datasets_flow.py
    python examples/datasets_flow.py memory:
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
from sklearn.datasets import load_iris  # type: ignore[import-untyped]
from sklearn.linear_model import LogisticRegression  # type: ignore[import-untyped]
from sklearn.pipeline import make_pipeline  # type: ignore[import-untyped]
from sklearn.preprocessing import StandardScaler  # type: ignore[import-untyped]

from umlaut_core import Umlaut
from umlaut_core.exceptions import InputValidationError

MODEL_NAME = "Iris Classifier"
LIVE_ROWS = 300
#: The audit record tag holding soft findings (out of range, unseen category).
FINDINGS = "umlaut.findings"


def iris_frame() -> pd.DataFrame:
    """The 150 flowers, the species as a category (its names, not codes 0-2)."""
    iris = load_iris(as_frame=True)
    frame = iris.frame.drop(columns="target")
    frame["species"] = pd.Categorical.from_codes(iris.target, list(iris.target_names))
    return frame


def traffic(features: pd.DataFrame, rows: int, seed: int) -> pd.DataFrame:
    """Flowers like the training ones: rows drawn from them with a little noise."""
    rng = np.random.default_rng(seed)
    picked = features.sample(rows, replace=True, random_state=seed).reset_index(drop=True)
    noise = rng.normal(0.0, 0.05, size=picked.shape)
    return (picked + noise).round(2).clip(lower=0.1)


def main(uri: str | None) -> None:
    frame = iris_frame()
    features = frame.drop(columns="species")
    with Umlaut(uri) as um:
        print(f"{um!r}\n")

        # 1. The dataset: versioned by content, profiled column by column.
        ds = um.track_dataset(frame, "iris", target="species", description="Fisher's 150 flowers")
        print(ds.profile_table())

        # 2. Train in a run that records its input, then track and promote the model.
        with um.start_run("iris", name="logistic regression") as run:
            run.log_input(ds)
            model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
            model.fit(features, frame["species"])
            run.log_param("max_iter", 1000)
            run.log_metric("train_accuracy", float(model.score(features, frame["species"])))
        mv = um.track_model(model, MODEL_NAME, run=run, datasets={"train": ds})
        um.promote(MODEL_NAME, mv.version, "Production", reason="datasets example")
        columns = [c["name"] for c in mv.manifest["signature"]["columns"]]
        print(f"tracked {MODEL_NAME!r} v{mv.version}, promoted to Production; "
              f"input signature from dataset iris v{ds.version}: {columns}\n")  # fmt: skip

        # 3. Predictions, each with the caller's reference id.
        print("predictions:")
        rows = features.iloc[[0, 75]]
        answers = um.run_model(MODEL_NAME, rows, stage="Production", reference_id="order-1")
        print(f"  order-1 (a DataFrame of 2 rows) -> {[a['prediction'] for a in answers]}")
        flower = {
            "sepal length (cm)": 6.3,
            "sepal width (cm)": 3.3,
            "petal length (cm)": 6.0,
            "petal width (cm)": 2.5,
        }
        answer = um.run_model(MODEL_NAME, flower, stage="Production", reference_id="order-2")
        print(f"  order-2 (a dict row)            -> {answer['prediction']} "
              f"(p={max(answer['probabilities'].values()):.2f})")  # fmt: skip

        # 4. A malformed input: 'petal width (cm)' left out, 'sepal width' misspelt.
        malformed = {
            "sepal length (cm)": 5.1,
            "sepal widht (cm)": 3.5,
            "petal length (cm)": 1.4,
        }
        try:
            um.run_model(MODEL_NAME, malformed, stage="Production", reference_id="order-3")
        except InputValidationError as exc:
            print(f"\nrefused order-3: {exc}")
            for problem in exc.problems:
                print(f"  - {problem}")
        (refused,) = um.history(MODEL_NAME, reference_id="order-3", limit=1)
        print(f"  audited as status={refused.status!r}, error_type={refused.error_type}\n")

        # 5. Lineage: from a prediction back to the data its model learned from.
        lineage = um.lineage(reference_id="order-2")
        print(describe_lineage(lineage))

        # 6. Normal traffic, then shifted traffic; the report covers the shifted window.
        um.run_batch(MODEL_NAME, traffic(features, LIVE_ROWS, seed=1), stage="Production")
        shifted_from = datetime.now(UTC)
        shifted = traffic(features, LIVE_ROWS, seed=2)
        shifted["petal length (cm)"] += 2.0
        shifted["petal width (cm)"] += 0.8
        um.run_batch(MODEL_NAME, shifted, stage="Production")
        print(f"\nfed {LIVE_ROWS} normal then {LIVE_ROWS} shifted calls through run_batch")
        window = um.history(MODEL_NAME, since=shifted_from, limit=LIVE_ROWS)
        flagged = [r for r in window if FINDINGS in r.tags]
        if flagged:  # outside the training range: recorded on the call, never refused
            found = "; ".join(f["message"] for f in json.loads(flagged[0].tags[FINDINGS]))
            print(f"{len(flagged)} of the shifted calls carry soft findings, e.g. {found}")
        print()
        um.flush()  # the report reads the tracker, not the local spool
        report = um.drift_report(MODEL_NAME, stage="Production", since=shifted_from)
        print(report.to_markdown())


def describe_lineage(lineage: Any) -> str:
    record, version, run = lineage.record, lineage.version, lineage.training_run
    lines = [
        f"lineage of {record.reference_id} (audit record {record.id}):",
        f"  answered by  {version.name} v{version.version} ({version.digest[:19]}…)",
    ]
    if run is not None:
        metrics = {k: round(m.last, 3) for k, m in run.metrics.items()}
        lines.append(f"  trained in   run {run.run_id} of experiment {run.experiment!r} "
                     f"{metrics}")  # fmt: skip
    for link in lineage.datasets:
        via = f"run {link.run_id}" if link.run_id else f"v{link.model_version}"
        lines.append(f"  learned from dataset {link.dataset_name} v{link.dataset_version} "
                     f"as {link.context!r} ({link.kind}, {via})")  # fmt: skip
    return "\n".join(lines)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)
