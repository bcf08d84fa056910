"""umlaut-mlflow: keep umlaut's models, stages and audit trail in MLflow.

Quick start (the tracker is found through the ``umlaut`` entry point)::

    from umlaut_core import Umlaut

    u = Umlaut("mlflow+http://127.0.0.1:5000")          # or "mlflow+sqlite:///mlflow.db",
    u.track_model(model, "Revenue Forecast", stage="Staging")   # or "mlflow:" (env)
    u.run_model("Revenue Forecast", {"revenue": 3}, stage="Staging")

In MLflow: the version is registered model *Revenue Forecast* version 1 (a pyfunc
that plain MLflow can load with ``mlflow.pyfunc.load_model("models:/Revenue
Forecast@Staging")``), the stage is an alias, and each call is a run in the
experiment ``umlaut/Revenue Forecast``. See README.md for the full layout.
"""

__all__: list[str] = []
