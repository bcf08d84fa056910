"""Warming the UI up in the ASGI lifespan's startup, so no page meets cold work.

* The models page's traffic counts (48 small counts per model on the models page's
  first page) are counted before startup completes: uvicorn accepts no connection
  until then, so no request meets them cold. Startup waits at most
  ``warm_up_timeout`` seconds: past that, or on an error, it carries on (logged) and
  the pages count what is missing themselves.
* Then the drift report of each of those models' default window is computed in the
  report cache's background thread, one after the other: seconds each, so startup
  does not wait for them (a page asking meanwhile shows it computing).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING

from starlette.concurrency import run_in_threadpool

from umlaut_core.clock import utcnow

from .drift_pages import warm_jobs

if TYPE_CHECKING:
    from .app import Ui

__all__ = ["warm_up"]

log = logging.getLogger("umlaut.ui")


async def warm_up(ui: Ui) -> None:
    """Count the models page's traffic (bounded), then start warming drift reports."""
    settings = ui.settings
    done = threading.Event()
    started = time.perf_counter()

    def count() -> None:
        try:
            names = [m.name for m in ui.umlaut.list_models()[: settings.page_size]]
            ui.traffic.warm(names, utcnow())
        except Exception as exc:
            log.warning("warming the models page failed (%s: %s); pages count when asked",
                        type(exc).__name__, exc)  # fmt: skip
        finally:
            done.set()

    # Its own daemon thread, not the thread pool: a store that hangs past the timeout
    # must hold neither a pool thread nor the process's exit.
    threading.Thread(target=count, name="umlaut-ui-warm", daemon=True).start()
    if await run_in_threadpool(done.wait, settings.warm_up_timeout):
        log.info("warmed the models page in %.2f s", time.perf_counter() - started)
    else:
        log.warning("warming the models page took over %g s; starting without it",
                    settings.warm_up_timeout)  # fmt: skip
    ui.reports.warm(warm_jobs(ui.umlaut, min(settings.page_size, ui.reports.size)))
