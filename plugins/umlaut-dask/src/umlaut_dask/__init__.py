"""umlaut-dask: batch scoring on a Dask cluster, one audit record per row.

    from distributed import Client
    from umlaut_core import Umlaut
    from umlaut_dask import score_frame

    client = Client("tcp://scheduler:8786")        # or LocalCluster() on one machine
    umlaut = Umlaut("postgresql+psycopg://…", "s3://models/umlaut")
    scored = score_frame(
        umlaut, orders, "Churn", stage="Production", key="order_id",
        meta={"prediction": "int64"},
    )
    scored.frame.to_parquet("s3://scores/churn/")  # outputs, indexed like ``orders``
    scored.batch_id                                 # resume with batch_id=… if cut short

The version is resolved once, on the client; each record's id is derived from the
batch id and the row's key (:func:`umlaut_core.ids.derived_id`), so a retried,
duplicated or resumed task writes nothing twice (trackers skip ids they hold). Each
partition's records are written in one transaction: by the worker that scored it, or
by the client when the store is a single-writer SQLite file. See the README for the
design and its limits.
"""

from ._client import ScoredBatch, new_batch_id, run_batch, score_bag, score_frame
from ._errors import RowKeyError

__version__ = "0.1.0"

__all__ = [
    "RowKeyError",
    "ScoredBatch",
    "__version__",
    "new_batch_id",
    "run_batch",
    "score_bag",
    "score_frame",
]
