"""umlaut-server: ``umlaut serve``, an audited HTTP scoring server.

    pip install umlaut-server
    echo -n "$TOKEN" | umlaut serve hash-token        # prints sha256:<hex>
    export UMLAUT_SERVE_TOKENS='sha256:<hex>=run,read'
    umlaut --tracking-uri postgresql+psycopg://… serve --model "Iris@Production"

    curl -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \\
         -d '{"dataframe_records": [{"sepal_length": 5.1, …}]}' \\
         http://127.0.0.1:8080/invocations

It speaks MLflow's scoring protocol (``/invocations``, ``/ping``, ``/version``),
the Open Inference Protocol (KServe V2, ``/v2``) and umlaut's own (``/v1``). Every
request that reaches a model writes one audit record through the spool, with the
caller's ``X-Request-ID`` (or a generated one, echoed) as its reference id; the
response names the version that answered (``X-Umlaut-Version``).

In Python, :func:`create_app` builds the ASGI app for a :class:`ServeConfig` (and an
optional ready ``Umlaut``), to run under any ASGI server.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._app import create_app
    from ._auth import hash_token
    from ._config import ModelSpec, ServeConfig

__version__ = "0.1.0"

__all__ = ["ModelSpec", "ServeConfig", "__version__", "create_app", "hash_token"]

#: Loaded on first use: every ``Umlaut()`` loads this package's plugin module (the
#: entry point), and importing Starlette there would tax every process that merely
#: has the server installed.
_LAZY = {
    "create_app": "._app",
    "hash_token": "._auth",
    "ModelSpec": "._config",
    "ServeConfig": "._config",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value
