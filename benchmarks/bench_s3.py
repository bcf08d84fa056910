"""umlaut-s3: S3ArtifactStore put/get against raw boto3 on one moto server, same run.

Baseline: ``client.upload_fileobj`` / ``client.download_fileobj`` with boto3's default
TransferConfig (the store uses the same sizes). Ours adds what the store promises:
a sha256 computed on upload and checked on download, an existence check so a bundle
is uploaded once, and error mapping. Every upload goes to a new key (the dedupe path
is reported separately); large objects are deleted between rounds, untimed, so the
in-memory moto server does not grow.
"""

from __future__ import annotations

import io
import itertools
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import _servers
from _harness import Row, Stats

KB, MB = 1000, 1000 * 1000


def _paired(
    fns: tuple[Callable[[], Any], ...],
    *,
    number: int,
    repeat: int,
    after: Callable[[], Any] | None = None,
) -> list[Stats]:
    """Seconds per call for each of ``fns``, rounds interleaved (A B A B …) so drift in
    the shared server (memory, spooled temp files) hits both sides alike."""
    for fn in fns:
        fn()
    if after:
        after()
    samples: list[list[float]] = [[] for _ in fns]
    for _ in range(repeat):
        for fn, out in zip(fns, samples, strict=True):
            start = time.perf_counter()
            for _ in range(number):
                fn()
            out.append((time.perf_counter() - start) / number)
            if after:
                after()
    return [Stats(statistics.median(s), min(s), max(s), repeat) for s in samples]


def _row(scenario: str, size: int, ours: Stats, base: Stats | None, baseline: str) -> Row:
    mb = size / MB
    ratio = base.median / ours.median if base else None
    return Row(
        scenario,
        "s3 (moto server, HTTP)",
        "MB/s",
        mb / ours.median,
        mb / ours.max,
        mb / ours.min,
        baseline,
        mb / base.median if base else None,
        ratio,
        "≥ 80% of raw boto3" if base else "",
        (ratio >= 0.8) if ratio is not None else None,
        {"bytes": size, "ms_per_call": round(ours.median * 1e3, 3)},
    )


def run(quick: bool) -> list[Row]:
    import logging

    import boto3
    from moto.server import ThreadedMotoServer
    from umlaut_s3 import S3ArtifactStore

    _servers.fake_aws_credentials()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        raw = boto3.client("s3", endpoint_url=endpoint)
        raw.create_bucket(Bucket="bench")
        store = S3ArtifactStore("s3://bench/store", endpoint_url=endpoint)
        counter = itertools.count()
        rows: list[Row] = []
        small_n, small_r = (50, 3) if quick else (300, 7)
        big_r = 3 if quick else 7
        for size, number, repeat in ((1 * KB, small_n, small_r), (50 * MB, 1, big_r)):
            data = os.urandom(size)
            label = "1 KB" if size < MB else "50 MB"
            raw_keys: list[str] = []
            our_keys: list[str] = []

            def raw_put(data: bytes = data, keys: list[str] = raw_keys) -> None:
                key = f"raw/{next(counter)}.zip"
                raw.upload_fileobj(io.BytesIO(data), "bench", key)
                keys.append(key)

            def our_put(data: bytes = data, keys: list[str] = our_keys) -> None:
                key = f"bundles/xx/{next(counter)}.zip"
                store.put(key, data)
                keys.append(key)

            def cleanup(
                big: bool = size >= MB,
                raw_keys: list[str] = raw_keys,
                our_keys: list[str] = our_keys,
            ) -> None:
                if big:  # keep the in-memory server small; small objects are cheap
                    for key in raw_keys[:-1]:
                        raw.delete_object(Bucket="bench", Key=key)
                    for key in our_keys[:-1]:
                        store.delete(key)
                    del raw_keys[:-1], our_keys[:-1]

            base, ours = _paired((raw_put, our_put), number=number, repeat=repeat, after=cleanup)
            rows.append(_row(f"put {label}", size, ours, base, "raw upload_fileobj"))

            raw_key, our_key = raw_keys[-1], our_keys[-1]

            def raw_get(key: str = raw_key) -> bytes:
                buf = io.BytesIO()
                raw.download_fileobj("bench", key, buf)
                return buf.getvalue()

            def our_get(key: str = our_key) -> bytes:
                return store.get(key)

            base, ours = _paired((raw_get, our_get), number=number, repeat=repeat)
            rows.append(_row(f"get {label}", size, ours, base, "raw download_fileobj"))

            # The dedupe path: putting an existing bundle again (HEAD or refused PUT).
            def put_again(key: str = our_key, data: bytes = data) -> str:
                return store.put(key, data)

            (again,) = _paired((put_again,), number=number, repeat=repeat)
            rows.append(_row(f"put {label}, already stored", size, again, None, ""))
        return rows
    finally:
        server.stop()
