"""Audit runs written straight to MLflow's REST API over one keep-alive session.

An audit record is two requests (create the run, then finish it), made on every
synchronous ``run_model`` and for every record a shipper delivers. Through
``MlflowClient`` each request also resolves request headers through every registered
provider (MLflow's Databricks detection tries about ten failing imports per request),
merges proxy settings from the environment and round-trips protobuf: about 2.5 ms of
a 12 ms request to a local MLflow 3 server, measured side by side
(``benchmarks/bench_mlflow.py``). :class:`RestRunWriter` sends the same JSON bodies to
the same endpoints with the same credentials, TLS settings, timeout and retry policy,
resolved once, and hands MLflow's error payloads to the same error mapping.

It is used only where that resolution cannot change between requests: an
``http(s)://`` tracking server with no credentials, a bearer token or basic auth, no
AWS SigV4 / auth-plugin / Databricks-SDK credentials and no request-header plugin
installed (an active MLflow workspace is sent per request, as MLflow does). Anywhere
else :meth:`RestRunWriter.for_store` returns None and the tracker writes runs through
``MlflowClient`` as before.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Mapping
from importlib.metadata import entry_points
from typing import Any

__all__ = ["RestRunWriter"]

#: MLflow's own list of statuses worth retrying (``rest_utils``), kept in step.
_RETRY_STATUSES = (429, 500, 502, 503, 504)
#: ``mlflow.utils.workspace_utils.WORKSPACE_HEADER_NAME``.
_WORKSPACE_HEADER = "X-MLFLOW-WORKSPACE"


class RestRunWriter:
    """``create_run`` and ``finish_run`` for one tracking server."""

    def __init__(
        self,
        host: str,
        *,
        headers: Mapping[str, str],
        verify: bool | str,
        cert: str | None,
        timeout: float,
        retries: int,
        backoff_factor: float,
        backoff_jitter: float,
    ) -> None:
        import requests
        from requests.adapters import HTTPAdapter
        from urllib3.util.retry import Retry

        self._base = host.rstrip("/") + "/api/2.0/mlflow/runs/"
        self._timeout = timeout
        session = requests.Session()
        # What requests' trust_env would read from the environment on every request
        # (proxies, a CA bundle, netrc credentials) is read once, here.
        session.proxies.update(requests.utils.get_environ_proxies(self._base))
        if verify is True:
            verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE", True)
        if "Authorization" not in headers:
            session.auth = requests.utils.get_netrc_auth(self._base)
        session.trust_env = False
        session.headers.update(headers)
        session.verify = verify
        session.cert = cert
        # The retry policy MlflowClient's session uses (request_utils), so a transient
        # error behaves the same whichever path wrote the run.
        retry = Retry(
            total=retries,
            connect=retries,
            read=retries,
            redirect=retries,
            status=retries,
            status_forcelist=_RETRY_STATUSES,
            backoff_factor=backoff_factor,
            backoff_jitter=backoff_jitter,
            raise_on_status=False,
            allowed_methods=None,
        )
        adapter = HTTPAdapter(max_retries=retry)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        self._session = session

    @classmethod
    def for_store(cls, store: Any, http: Mapping[str, str]) -> RestRunWriter | None:
        """A writer for MLflow's tracking ``store``, or None where the direct path
        could send different headers or credentials than MlflowClient would.

        :param http: the ``MLFLOW_HTTP_REQUEST_*`` settings in effect
            (``_uri.apply_http_limits``), so both paths time out and retry alike.
        """
        get_creds = getattr(store, "get_host_creds", None)
        if get_creds is None:  # a database store, not a server
            return None
        try:
            creds = get_creds()
        except Exception:  # MlflowClient reports the problem on its first request
            return None
        return cls.for_creds(creds, http)

    @classmethod
    def for_creds(cls, creds: Any, http: Mapping[str, str]) -> RestRunWriter | None:
        """A writer for an ``MlflowHostCreds``, or None (see the module docstring)."""
        host = str(getattr(creds, "host", "") or "")
        if not host.startswith(("http://", "https://")):
            return None
        if any(
            getattr(creds, name, None)
            for name in (
                "aws_sigv4",
                "auth",
                "use_databricks_sdk",
                "client_secret",
                "workspace_id",
                "use_secret_scope_token",
            )
        ):
            return None
        if entry_points(group="mlflow.request_header_provider"):
            return None  # a plugin may add headers per request
        if os.environ.get("_MLFLOW_DATABRICKS_TRAFFIC_ID"):
            return None
        from mlflow.tracking.request_header.registry import resolve_request_headers

        headers = dict(resolve_request_headers())
        if creds.username and creds.password:
            pair = f"{creds.username}:{creds.password}".encode()
            headers["Authorization"] = "Basic " + base64.standard_b64encode(pair).decode()
        elif creds.token:
            headers["Authorization"] = f"Bearer {creds.token}"
        server_cert = getattr(creds, "server_cert_path", None)
        verify: bool | str = (
            server_cert
            if server_cert is not None
            else not getattr(creds, "ignore_tls_verification", False)
        )
        return cls(
            host,
            headers=headers,
            verify=verify,
            cert=getattr(creds, "client_cert_path", None),
            timeout=float(http["MLFLOW_HTTP_REQUEST_TIMEOUT"]),
            retries=int(http["MLFLOW_HTTP_REQUEST_MAX_RETRIES"]),
            backoff_factor=float(http["MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR"]),
            backoff_jitter=float(http["MLFLOW_HTTP_REQUEST_BACKOFF_JITTER"]),
        )

    def create_run(
        self, experiment_id: str, *, start_time: int, tags: Mapping[str, str], run_name: str
    ) -> str:
        """Create a run (status RUNNING) and return its id."""
        body = {
            "experiment_id": str(experiment_id),
            # MlflowClient.create_run's choice, kept so both paths make the same run.
            "user_id": tags.get("mlflow.user", "unknown"),
            "start_time": start_time,
            "tags": [{"key": k, "value": v} for k, v in tags.items()],
            "run_name": run_name,
        }
        return str(self._post("create", body)["run"]["info"]["run_id"])

    def finish_run(self, run_id: str, status: str, end_time: int) -> None:
        """Set a run's final status (``FINISHED``/``FAILED``) and end time."""
        self._post(
            "update",
            {"run_id": run_id, "run_uuid": run_id, "status": status, "end_time": end_time},
        )

    def close(self) -> None:
        self._session.close()

    def _post(self, endpoint: str, body: Mapping[str, Any] | str) -> Any:
        """POST ``body`` (a mapping, or JSON text a caller wrote out itself)."""
        import requests
        from mlflow.exceptions import MlflowException, RestException

        url = self._base + endpoint
        headers = {}
        if workspace := _active_workspace():
            headers[_WORKSPACE_HEADER] = workspace
        data: bytes | None = None
        as_json: Mapping[str, Any] | None = None
        if isinstance(body, str):
            data = body.encode()
            headers["Content-Type"] = "application/json"
        else:
            as_json = body
        try:
            response = self._session.post(
                url,
                data=data,
                json=as_json,
                timeout=self._timeout,
                headers=headers or None,
            )
        except requests.RequestException as exc:
            # The message MlflowClient gives for the same failure.
            raise MlflowException(f"API request to {url} failed with exception {exc}") from exc
        if response.status_code == 200:
            return response.json()
        try:
            payload = response.json()
        except ValueError:
            payload = None
        if isinstance(payload, dict) and "error_code" in payload:
            raise RestException(payload)
        raise MlflowException(
            f"API request to endpoint {url} failed with error code {response.status_code} "
            f"!= 200. Response body: '{response.text[:500]}'"
        )


def _active_workspace() -> str | None:
    try:
        from mlflow.utils.workspace_context import get_request_workspace
    except ImportError:  # MLflow releases before workspaces
        return None
    return get_request_workspace()  # type: ignore[no-any-return]
