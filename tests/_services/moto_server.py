"""moto's S3 (and other AWS) mock served over real HTTP on 127.0.0.1.

``moto_server`` (session scope) starts ``moto.server.ThreadedMotoServer`` in a thread of
the test process on a free port and yields its endpoint URL, e.g.
``http://127.0.0.1:41234``; it is stopped at session end. Clients need some
credentials (any fake values) and a region; moto accepts every signature.

The server shares moto's in-memory state with ``moto.mock_aws`` in this process, and
``mock_aws`` resets that state when it exits: tests against the server should create
their own bucket rather than rely on one made by another test.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

__all__ = ["fake_aws_env", "moto_server"]


def fake_aws_env(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    *,
    access_key: str,
    secret_key: str,
    session_token: str | None = None,
) -> dict[str, str]:
    """Fake credentials and a region in the environment, and nothing else of AWS's:
    no profile, endpoint or config file of the machine running the tests is read."""
    for var in (
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_S3",
        "AWS_SECURITY_TOKEN",
        "AWS_SESSION_TOKEN",
        "AWS_REGION",
    ):
        monkeypatch.delenv(var, raising=False)
    env = {
        "AWS_ACCESS_KEY_ID": access_key,
        "AWS_SECRET_ACCESS_KEY": secret_key,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-aws-credentials"),
        # Never wait on the EC2 metadata service for credentials in tests.
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    if session_token is not None:
        env["AWS_SESSION_TOKEN"] = session_token
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


def _unavailable(reason: str) -> None:
    message = f"moto server unavailable: {reason}. Install it with `pip install 'moto[server]'`."
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """Endpoint URL of a moto server on 127.0.0.1 (started once per session)."""
    try:
        from moto.server import ThreadedMotoServer
    except ImportError as exc:  # moto[server] pulls in flask & werkzeug
        _unavailable(f"cannot import moto.server ({exc})")
        raise  # unreachable: _unavailable raises
    # werkzeug logs one line per request at INFO; keep the captured logs readable.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    # Port 0: the OS picks a free port at bind time, so parallel sessions never race.
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    try:
        server.start()
        host, port = server.get_host_and_port()
    except Exception as exc:
        _unavailable(f"it failed to start ({exc!r})")
        raise
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()
