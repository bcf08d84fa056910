"""Fixtures for the umlaut-server tests; they live in servekit.py, which test modules
import by name (this folder is put on sys.path here)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from servekit import (
    any_server,
    mlflow_registry,
    postgres_s3_registry,
    server_factory,
    sqlite_registry,
    sqlite_server,
)

__all__ = [
    "any_server",
    "mlflow_registry",
    "postgres_s3_registry",
    "server_factory",
    "sqlite_registry",
    "sqlite_server",
]
