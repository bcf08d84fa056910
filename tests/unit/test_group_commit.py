"""Group commit of spool appends: batching across threads, each caller acknowledged
only once its own rows are committed, failures kept per caller."""

from __future__ import annotations

import datetime as dt
import os
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from umlaut_core.exceptions import BackendError
from umlaut_core.group_commit import GroupCommit, Turn
from umlaut_core.records import audit_record
from umlaut_core.spool import Spool

UTC_NOW = dt.datetime.now(dt.UTC)


def _record(i: int) -> object:
    return audit_record(
        f"r-{i:06d}", "m", 1, "version=1", "1", "2", "ok", UTC_NOW, 0.1, None, None, None, {}, False
    )


def _rows(*values: int) -> object:
    return lambda now: [(v, now) for v in values]


def test_concurrent_appends_share_transactions_and_all_land(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.db", tracker_uri="memory:")
    seen_late: list[str] = []

    def caller(start: int) -> None:
        check = sqlite3.connect(tmp_path / "spool.db")
        for i in range(start, start + 100):
            spool.append([_record(i)], 1, limit=0, policy="block")  # type: ignore[list-item]
            # Acknowledged means committed: another connection sees the row at once.
            found = check.execute("SELECT 1 FROM spool WHERE id = ?", (f"r-{i:06d}",)).fetchone()
            if found is None:
                seen_late.append(f"r-{i:06d}")
        check.close()

    threads = [threading.Thread(target=caller, args=(k * 1000,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seen_late == []
    assert spool.status().depth == 800
    spool.close()


def test_callers_waiting_behind_a_write_are_batched() -> None:
    batches: list[int] = []
    gate = threading.Event()

    def write(turns: list[Turn[object]]) -> None:
        if not batches:
            gate.wait(5)  # hold the first write so the others queue behind it
        batches.append(len(turns))

    commits: GroupCommit[object] = GroupCommit(write)
    first = threading.Thread(target=commits.submit, args=(_rows(0), 1))
    first.start()
    time.sleep(0.05)
    others = [threading.Thread(target=commits.submit, args=(_rows(i), 1)) for i in range(1, 7)]
    for t in others:
        t.start()
    time.sleep(0.1)
    gate.set()
    for t in [first, *others]:
        t.join(5)
    assert batches[0] == 1
    assert sum(batches) == 7
    assert len(batches) < 7  # the six that waited did not take six transactions


def test_a_failing_caller_does_not_fail_the_others_in_its_batch() -> None:
    committed: list[int] = []
    gate = threading.Event()
    errors: dict[int, BaseException] = {}

    def write(turns: list[Turn[object]]) -> None:
        values = [v for turn in turns for v, _ in turn.rows(0.0)]  # type: ignore[misc]
        if values == [0]:
            gate.wait(5)
        if 3 in values:
            raise ValueError("row 3 is refused")
        committed.extend(values)

    commits: GroupCommit[object] = GroupCommit(write)

    def submit(i: int) -> None:
        try:
            commits.submit(_rows(i), 1)
        except ValueError as exc:
            errors[i] = exc

    threads = [threading.Thread(target=submit, args=(i,)) for i in range(6)]
    threads[0].start()
    time.sleep(0.05)
    for t in threads[1:]:
        t.start()
    time.sleep(0.1)
    gate.set()
    for t in threads:
        t.join(5)
    assert sorted(committed) == [0, 1, 2, 4, 5]
    assert list(errors) == [3]


def test_a_leader_interrupted_mid_write_never_acknowledges_its_followers() -> None:
    gate = threading.Event()
    calls: list[int] = []

    def write(turns: list[Turn[object]]) -> None:
        calls.append(len(turns))
        if len(calls) == 1:
            gate.wait(5)
            return
        raise KeyboardInterrupt  # the second leader is interrupted with a follower

    commits: GroupCommit[object] = GroupCommit(write)
    outcomes: dict[int, str] = {}

    def submit(i: int) -> None:
        try:
            commits.submit(_rows(i), 1)
            outcomes[i] = "ok"
        except KeyboardInterrupt:
            outcomes[i] = "interrupted"
        except BackendError:
            outcomes[i] = "not queued"

    threads = [threading.Thread(target=submit, args=(i,)) for i in range(3)]
    threads[0].start()
    time.sleep(0.05)
    threads[1].start()
    time.sleep(0.05)
    threads[2].start()
    time.sleep(0.1)
    gate.set()
    for t in threads:
        t.join(5)
    assert outcomes[0] == "ok"
    assert sorted(outcomes[i] for i in (1, 2)) == ["interrupted", "not queued"]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork is POSIX only")
def test_a_fork_taken_while_another_thread_leads_does_not_hang_the_child() -> None:
    gate = threading.Event()

    def write(turns: list[Turn[object]]) -> None:
        if threading.current_thread().name == "leader":
            gate.wait(5)

    commits: GroupCommit[object] = GroupCommit(write)
    leader = threading.Thread(target=commits.submit, args=(_rows(0), 1), name="leader")
    leader.start()
    time.sleep(0.05)
    pid = os.fork()
    if pid == 0:  # the child: the leading thread does not exist here
        try:
            commits.submit(_rows(1), 1)
        finally:
            os._exit(0)
    deadline = time.monotonic() + 10
    status = None
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.02)
    else:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
    gate.set()
    leader.join(5)
    assert status == 0, "the child hung (or failed) on a lead held by the parent's thread"
