"""Recognising values of optional libraries (pandas) without importing them.

``import umlaut_core`` must not import pandas or numpy, yet the encoder, batches and
the scikit-learn flavor treat their objects specially: they are told apart by the
class's name and module.
"""

from __future__ import annotations

__all__ = ["is_pandas"]


def is_pandas(value: object, name: str) -> bool:
    """True when ``value`` is an instance of pandas' class ``name`` (``"DataFrame"``)."""
    kind = type(value)
    return kind.__name__ == name and kind.__module__.split(".", 1)[0] == "pandas"
