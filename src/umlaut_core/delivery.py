"""How audit records reach the tracker: ``sync``, ``spooled`` or ``off``.

* ``sync`` — the record is in the tracker before ``run_model`` returns (default for
  local trackers such as SQLite).
* ``spooled`` — the record goes to a local :class:`~umlaut_core.spool.Spool` and a
  background shipper delivers it in order, in batches, retrying with backoff while the
  tracker is unreachable (default for trackers that declare ``Capability.REMOTE``).
  The shipper is a child process when the tracker can be reopened from its URI there
  (see :mod:`umlaut_core.shipping` for why), else a thread. Delivery is at least once;
  trackers skip ids they already hold, so nothing is doubled. ``Umlaut.flush()`` ships
  everything; interpreter exit waits up to ``exit_flush_timeout`` seconds; whatever
  remains is shipped by the next process that opens the same spool.
* ``off`` — records are dropped (tests and throwaway experiments only).

Audit records and training-run writes (params, metric points, tags, status: see
:mod:`umlaut_core.experiments.writes`) are spooled; registering versions and moving
stages always talk to the tracker directly. Training-run writes follow the mode's
spool: ``spooled`` queues them with the audit records, ``sync`` and ``off`` deliver
them to the experiment store from the run's background flusher (``off`` drops audit
records only).
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import json
import logging
import os
import select
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Mapping, Sized
from typing import Any, Literal

from .config import Settings, default_home
from .exceptions import ConfigurationError
from .protocols import Capability, Tracker
from .records import AuditRecord
from .redaction import redact
from .shipping import Shipper
from .spool import Spool, SpoolStatus

__all__ = ["Delivery", "DeliveryMode"]

DeliveryMode = Literal["sync", "spooled", "off"]
log = logging.getLogger("umlaut.delivery")
_live: weakref.WeakSet[Delivery] = weakref.WeakSet()
#: How long a closing facade lets its shipper process finish the batch in hand.
_PROCESS_STOP_S = 2.0
#: The shortest interval between two wake-ups of the shipper from one process.
NUDGE_EVERY_S = 0.005


class Delivery:
    """Owns the path from finished calls to stored audit records."""

    def __init__(
        self,
        tracker: Tracker,
        mode: DeliveryMode,
        *,
        spool_path: str | None = None,
        spool_limit: int = 1_000_000,
        spool_full: str = "block",
        warn_after_s: float = 60.0,
        exit_flush_timeout_s: float = 5.0,
        durable: bool = False,
        reopen: Mapping[str, Any] | None = None,
    ) -> None:
        """``reopen`` (``tracking_uri`` and ``tracker_options``) lets a child process
        open the same tracker and ship from there; without it shipping is a thread."""
        self.tracker = tracker
        self.mode = mode
        self.spool: Spool | None = None
        self._limit, self._policy = spool_limit, spool_full
        self._exit_timeout = exit_flush_timeout_s
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._flusher: threading.Thread | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._child_settings: dict[str, Any] | None = None
        self._shipper_pid = 0
        self._start_lock = threading.Lock()
        #: Training-run writes were spooled here: they must reach the store in order,
        #: so one shipper at a time may hold them (see flush).
        self._ordered = False
        self._next_wake = 0.0
        if mode == "spooled":
            assert spool_path is not None
            self.spool = Spool(spool_path, tracker_uri=tracker.uri, durable=durable)
            self._shipper = Shipper(self.spool, tracker, warn_after_s=warn_after_s)
            if reopen is not None and _can_spawn_python():
                self._child_settings = {
                    "tracking_uri": reopen["tracking_uri"],
                    "tracker_options": dict(reopen.get("tracker_options") or {}),
                    "spool_path": str(self.spool.path),
                    "tracker_uri": self.spool.tracker_uri,
                    "durable": durable,
                    "warn_after_s": warn_after_s,
                }
                try:
                    json.dumps(self._child_settings)
                except (TypeError, ValueError):  # options only this process can hold
                    self._child_settings = None
            _live.add(self)
            if self.spool.status().depth:
                self._ensure_shipper()  # a previous process left records: ship them

    @classmethod
    def from_settings(
        cls, tracker: Tracker, settings: Settings, *, reopenable: bool = False
    ) -> Delivery:
        """The mode the settings ask for, else spooled for REMOTE trackers, else sync.

        ``reopenable`` says the tracker was opened from ``settings`` alone, so a child
        process can open it too.
        """
        mode = settings.delivery or (
            "spooled" if Capability.REMOTE in tracker.capabilities else "sync"
        )
        spool_path = settings.spool_path
        if mode == "spooled" and spool_path is None:
            # One spool per tracker URI, so two registries never mix their records. The
            # redacted form is hashed: a rotated password must find the same spool.
            tag = hashlib.sha256(redact(tracker.uri).encode()).hexdigest()[:12]
            spool_path = str(default_home() / "spool" / f"audit-{tag}.db")
        shareable = reopenable and Capability.MULTI_PROCESS in tracker.capabilities
        if mode == "spooled" and settings.shipper == "process" and not shareable:
            raise ConfigurationError(
                f"shipper='process' needs a tracker that several processes can share "
                f"(Capability.MULTI_PROCESS), opened from tracking_uri rather than passed "
                f"in as an object; {redact(tracker.uri)} is not; use shipper='thread'"
            )
        in_process = settings.shipper == "thread" or not shareable
        return cls(
            tracker,
            mode,  # type: ignore[arg-type]
            spool_path=spool_path,
            spool_limit=settings.spool_limit,
            spool_full=settings.spool_full,
            warn_after_s=settings.spool_warn_after,
            exit_flush_timeout_s=settings.exit_flush_timeout,
            durable=settings.spool_durable,
            reopen=None
            if in_process
            else {
                "tracking_uri": settings.tracking_uri,
                "tracker_options": settings.tracker_options,
            },
        )

    @property
    def shipper(self) -> Literal["process", "thread"] | None:
        """Where records are shipped from (None: nothing to ship)."""
        if self.spool is None:
            return None
        return "process" if self._child_settings is not None else "thread"

    # -- the hot path ------------------------------------------------------------------

    def deliver(self, records: Iterable[AuditRecord]) -> None:
        if self.mode == "sync":
            self.tracker.record_runs(records)
        elif self.mode == "spooled":
            assert self.spool is not None
            count = len(records) if isinstance(records, Sized) else None
            batch = records if count is not None else list(records)
            self.spool.append(
                batch,
                count if count is not None else len(batch),  # type: ignore[arg-type]
                limit=self._limit,
                policy=self._policy,
            )
            self._wake_shipper()
        else:
            for _ in records:
                pass

    def spool_writes(self, bodies: list[str]) -> None:
        """Queue training-run writes (JSON bodies) for the shipper (spooled mode)."""
        assert self.spool is not None
        self._ordered = True
        self.spool.append_writes(bodies, limit=self._limit, policy=self._policy)
        self._wake_shipper()

    def _wake_shipper(self) -> None:
        # At most once per NUDGE_EVERY_S: waking the shipper process for every record
        # cost a context switch per call (~80 µs on a busy 2-core machine) and made it
        # ship one record per transaction. Between wake-ups it finds the records by
        # itself (it lingers after a batch); an append that falls in the gap waits at
        # most the shipper's idle poll.
        now = time.monotonic()
        if now < self._next_wake:
            return
        self._next_wake = now + NUDGE_EVERY_S
        self._ensure_shipper()
        self._nudge()

    def use_experiment_store(self, opener: Callable[[], Any]) -> None:
        """How a shipper thread of this process reaches the experiment store (a
        shipper process opens its own from the tracker)."""
        if self.spool is not None:
            self._shipper._experiments = opener

    def _nudge(self) -> None:
        proc = self._proc
        if proc is None:
            self._wake.set()
            return
        # A full pipe means wake-ups are already pending; a gone child is restarted by
        # the next call. (try/except: this runs on every spooled call.)
        try:  # noqa: SIM105
            os.write(proc.stdin.fileno(), b"\0")  # type: ignore[union-attr]
        except (OSError, ValueError):
            pass

    # -- shipping ----------------------------------------------------------------------

    def _shipper_alive(self) -> bool:
        if self._shipper_pid != os.getpid():
            return False  # forked: the shipper belongs to the parent
        if self._proc is not None:
            return self._proc.poll() is None
        return self._thread is not None and self._thread.is_alive()

    def _ensure_shipper(self) -> None:
        if self._shipper_alive():
            return
        with self._start_lock:
            if self._shipper_alive():
                return
            if self._proc is not None and self._shipper_pid == os.getpid():
                # It died under us (killed, or could not open the tracker): what it held
                # returns to the spool when its lease ends; ship from here from now on.
                log.warning(
                    "the audit shipper process for %s exited with code %s; shipping "
                    "from a thread of this process instead",
                    self.spool.path if self.spool else "?",
                    self._proc.returncode,
                )
                self._discard_process()
                self._child_settings = None
            self._shipper_pid = os.getpid()
            if self._child_settings is not None:
                try:
                    self._proc = self._spawn(self._child_settings)
                    return
                except OSError as exc:
                    log.warning("cannot start an audit shipper process (%s); using a thread", exc)
                    self._child_settings = None
            self._thread = self._start_thread(until_empty=False)

    def _start_thread(self, *, until_empty: bool) -> threading.Thread:
        self._stop.clear()
        thread = threading.Thread(
            target=self._shipper.run,
            args=(self._thread_wait,),
            kwargs={"until_empty": until_empty},
            daemon=True,
            name="umlaut-audit-shipper",
        )
        thread.start()
        return thread

    @staticmethod
    def _spawn(settings: Mapping[str, Any]) -> subprocess.Popen[bytes]:
        env = dict(os.environ)
        # The child must import the same umlaut and plugins as this process.
        env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
        proc = subprocess.Popen(
            # Not "-m umlaut_core.shipping": the package imports that module itself.
            [sys.executable, "-c", "import sys, umlaut_core.shipping as s; sys.exit(s.main())"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            close_fds=True,
        )
        assert proc.stdin is not None
        proc.stdin.write(json.dumps(settings).encode() + b"\n")
        proc.stdin.flush()
        os.set_blocking(proc.stdin.fileno(), False)
        return proc

    def _thread_wait(self, seconds: float) -> bool:
        if seconds > 0:
            self._wake.wait(seconds)
        self._wake.clear()
        return not self._stop.is_set()

    def _discard_process(self, wait_s: float = 0.0) -> None:
        """Close the child's stdin (its cue to stop) and reap it, waiting up to
        ``wait_s`` for the batch in hand; a child still starting up is not waited for."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        started = proc.stdout is not None and bool(select.select([proc.stdout], [], [], 0)[0])
        for pipe in (proc.stdin, proc.stdout):
            with contextlib.suppress(OSError):
                if pipe is not None:
                    pipe.close()
        try:
            proc.wait(timeout=wait_s if started else 0.0)
        except subprocess.TimeoutExpired:
            # Whatever it had claimed goes back to the spool when its lease ends;
            # records it already wrote are recognised by id and not written twice.
            proc.kill()
            proc.wait()

    def flush(self, timeout: float | None = None) -> bool:
        """Ship everything queued; True when the spool is empty within ``timeout``.

        With a shipper process, a thread of this process ships too until the spool is
        empty: the caller is waiting anyway, and the child may still be starting up.
        Not once this process has spooled training-run writes: two shippers would
        claim a run's writes side by side and apply them out of order (a summary
        counted by one overwritten by the other's), and on a one-worker server they
        only slow each other down; the child alone ships them (a thread takes over
        if it dies). Neither ever holds ``flush`` past its timeout, even on a hung
        connection.
        """
        if self.spool is None:
            return True
        self._ensure_shipper()
        if (
            self._proc is not None
            and not self._ordered
            and not (self._flusher and self._flusher.is_alive())
        ):
            self._flusher = self._start_thread(until_empty=True)
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.spool.status().depth:
            if deadline is not None and time.monotonic() >= deadline:
                return False
            self._ensure_shipper()  # a child that died is replaced by a thread
            self._nudge()
            time.sleep(0.02)
        return True

    def status(self) -> SpoolStatus:
        if self.spool is None:
            return SpoolStatus(depth=0, oldest_age_s=None, dropped=0, path="")
        return self.spool.status()

    def close(self, timeout: float | None = None) -> None:
        if self.spool is None:
            return
        self.flush(self._exit_timeout if timeout is None else timeout)
        self._stop.set()
        self._wake.set()
        if self._shipper_pid == os.getpid():
            for thread in (self._thread, self._flusher):
                if thread is not None:
                    thread.join(timeout=2)
            self._discard_process(_PROCESS_STOP_S)
        self.spool.close()
        _live.discard(self)


def _can_spawn_python() -> bool:
    # Embedded interpreters (uWSGI, some app servers) set sys.executable to something
    # that is not a Python; spawning it would start the server again.
    name = os.path.basename(sys.executable or "").lower()
    return name.startswith(("python", "pypy"))


def _forget_inherited_shippers() -> None:
    # A forked child holds the write end of its parent's shipper pipe; keeping it open
    # would stop that shipper from seeing its parent leave.
    for delivery in list(_live):
        proc, delivery._proc = delivery._proc, None
        for pipe in (proc.stdin, proc.stdout) if proc is not None else ():
            with contextlib.suppress(OSError):
                if pipe is not None:
                    pipe.close()


os.register_at_fork(after_in_child=_forget_inherited_shippers)


@atexit.register
def _flush_at_exit() -> None:
    for delivery in list(_live):
        # Exit must not fail: whatever is not shipped stays in the spool for next time.
        with contextlib.suppress(Exception):
            delivery.close()
