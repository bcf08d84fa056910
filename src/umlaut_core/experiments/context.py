"""Which training run is current: a ``contextvars.ContextVar``, never a global.

Threads started with a copied context (``contextvars.copy_context().run``),
asyncio tasks (each copies its creator's context) and nested calls see the run that
was current where they began, and two threads that each run their own pipeline never
see each other's runs: a thread-local or a module global (MLflow's fluent API) mixes
runs up as soon as asyncio tasks share a thread.
"""

from __future__ import annotations

import contextvars
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .active import ActiveTrainingRun

__all__ = ["current_run"]

_current: contextvars.ContextVar[ActiveTrainingRun | None] = contextvars.ContextVar(
    "umlaut_training_run", default=None
)


def current_run() -> ActiveTrainingRun | None:
    """The training run current in this context, or None when none is open."""
    return _current.get()
