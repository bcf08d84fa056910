"""Iris, step by step: each execution of the pipeline is a parent training run with
one child run per step, then the better execution is found with a query and its
model tracked and promoted.

    StandardScaler → PCA → LogisticRegression, decorated with @step;
    the function that calls them with @pipeline.

Each step's run records its arguments as params (arrays as shape, dtype and a
sha256, never their contents), its duration and a summary of what it returned; the
pipeline's returned ``{"accuracy": …}`` becomes its metric. Nothing in the training
code mentions a store or a run id.

Runs on the embedded default (``.umlaut/`` in the working directory) or on any
tracking URI given as the first argument or in ``UMLAUT_TRACKING_URI``; with only
the URI changed it runs on an MLflow server, whose UI shows each execution as a
parent run with three children::

    pip install ./ ./plugins/umlaut-sql scikit-learn
    python examples/pipeline_decorator.py
    python examples/pipeline_decorator.py mlflow+http://localhost:5000
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from typing import Any

from sklearn.datasets import load_iris
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from umlaut_core import Umlaut
from umlaut_core.experiments import pipeline, set_default_umlaut, step
from umlaut_core.experiments.context import current_run

EXPERIMENT = "iris-pipeline"
MODEL_NAME = "Iris Classifier"
#: The fitted pipeline of each execution, by training run id, to track the best.
FITTED: dict[str, Pipeline] = {}


@step
def scale(x_train: Any, x_test: Any) -> tuple[StandardScaler, Any, Any]:
    scaler = StandardScaler().fit(x_train)
    return scaler, scaler.transform(x_train), scaler.transform(x_test)


@step
def reduce(x_train: Any, x_test: Any, n_components: int) -> tuple[PCA, Any, Any]:
    pca = PCA(n_components=n_components).fit(x_train)
    run = current_run()  # this step's run: metrics logged here land in it
    if run is not None:
        run.log_metric("explained_variance", float(pca.explained_variance_ratio_.sum()))
    return pca, pca.transform(x_train), pca.transform(x_test)


@step
def classify(x_train: Any, y_train: Any, C: float) -> LogisticRegression:
    return LogisticRegression(C=C, max_iter=1000).fit(x_train, y_train)


@pipeline(experiment=EXPERIMENT)
def train(n_components: int, C: float, seed: int = 0) -> dict[str, float]:
    x, y = load_iris(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=0.3, random_state=seed, stratify=y
    )
    scaler, x_train, x_test = scale(x_train, x_test)
    pca, x_train, x_test = reduce(x_train, x_test, n_components=n_components)
    model = classify(x_train, y_train, C=C)
    run = current_run()
    if run is not None:
        FITTED[run.run_id] = make_pipeline(scaler, pca, model)
    return {"accuracy": float(model.score(x_test, y_test))}  # → the run's metric


def main(argv: list[str]) -> None:
    uri = argv[1] if len(argv) > 1 else None  # None: UMLAUT_TRACKING_URI, else .umlaut/
    with Umlaut(uri) as um:
        set_default_umlaut(um)  # the facade of decorated calls made outside any run
        since = datetime.now(UTC).isoformat()
        for n_components, c in ((1, 0.05), (3, 1.0)):
            metrics = train(n_components=n_components, C=c)  # a parent run, 3 children
            print(f"train(n_components={n_components}, C={c}): {metrics}")

        um.flush()
        page = um.search_training_runs(
            EXPERIMENT,
            filter=(
                f"parent_id is null and tags.`umlaut.step.kind` = 'pipeline' "
                f"and status = 'FINISHED' and started_at >= '{since}'"
            ),
            order_by="metrics.accuracy DESC",
            limit=1,
        )
        best = page.runs[0]
        accuracy = best.metrics["accuracy"].last
        print(f"best run {best.run_id}: params {dict(best.params)}, accuracy {accuracy:.3f}")
        children = um.search_training_runs(EXPERIMENT, filter=f"parent_id = '{best.run_id}'")
        print(f"  its steps: {sorted(str(c.name) for c in children.runs)}")

        mv = um.track_model(
            FITTED[best.run_id],
            MODEL_NAME,
            run=best.run_id,  # lineage: the version names the run that trained it
            description=f"iris, accuracy {accuracy:.3f}",
        )
        um.promote(MODEL_NAME, mv.version, "Production", reason=f"accuracy {accuracy:.3f}")
        print(f"tracked {MODEL_NAME!r} version {mv.version} and promoted it to Production")
        prediction = um.run_model(MODEL_NAME, [[5.1, 3.5, 1.4, 0.2]], stage="Production")
        print(f"run_model(...) -> {prediction}")
        set_default_umlaut(None)


if __name__ == "__main__":
    main(sys.argv)
