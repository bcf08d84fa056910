"""The web UI: models, stages, the audit trail, training runs, datasets and drift,
as server-rendered pages over the ``Umlaut`` facade (so any backend works).

    umlaut ui                                 # http://127.0.0.1:8081/ui/
    umlaut serve --model Iris@Production --ui # the same pages at /ui of the server

In Python, :func:`create_ui_app` is the ASGI app for a ready ``Umlaut``; in another
Starlette app, add a :class:`Ui`'s ``mount()`` and call its ``start()``/``stop()``
in the app's lifespan (the warm-up), or add :func:`ui_mount` alone. Pages need a
token with the ``read`` scope (or ``no_auth``); promoting needs ``admin``.
"""

from .app import Ui, UiSettings, create_ui_app, ui_mount

__all__ = ["Ui", "UiSettings", "create_ui_app", "ui_mount"]
