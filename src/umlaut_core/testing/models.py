"""Small models the conformance suite tracks; importable in any process with the core.

They live in an installed module, so bundles pickle them by reference and a spawned
process can load them.
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "BadErrorText",
    "Echo",
    "ExampleModel",
    "Failing",
    "SurrogateKey",
    "Threshold",
    "Unencodable",
    "double",
]


class ExampleModel:
    """The original umlaut README's model: is revenue above 5?"""

    def business_logic(self, revenue: int) -> bool:
        return revenue > 5

    def run(self, model_input: dict[str, Any]) -> bool:
        return self.business_logic(revenue=model_input.get("revenue"))  # type: ignore[arg-type]


class Threshold:
    """A model whose parameter changes its bundle: ``Threshold(1)`` ≠ ``Threshold(2)``."""

    def __init__(self, limit: float) -> None:
        self.limit = limit

    def run(self, model_input: dict[str, Any]) -> dict[str, Any]:
        return {"above": model_input["x"] > self.limit, "limit": self.limit}


class Echo:
    """Returns its input unchanged, to check the encoding round trip."""

    def __init__(self, tag: str = "") -> None:
        self.tag = tag

    def run(self, model_input: Any) -> Any:
        return model_input


class Failing:
    """Raises ``ValueError`` for negative ``x``."""

    def run(self, model_input: dict[str, Any]) -> float:
        if model_input["x"] < 0:
            raise ValueError(f"x must be >= 0, got {model_input['x']}")
        root: float = float(model_input["x"]) ** 0.5
        return root


class Unencodable:
    """Returns something JSON cannot hold."""

    def run(self, model_input: Any) -> Any:
        return object()


def double(model_input: dict[str, Any]) -> int:
    """A plain-function model."""
    return int(model_input["x"]) * 2


class SurrogateKey:
    """Returns a dict whose key holds a lone surrogate: not valid UTF-8."""

    def run(self, model_input: Any) -> Any:
        return {"ok": 1, "nested": {"bad \ud800 key": 2}}


class BadErrorText:
    """Raises ``ValueError`` whose text holds a lone surrogate and a NUL; the last
    exception raised is kept on the class, so a test can check the caller got it."""

    raised: ClassVar[list[BaseException]] = []

    def run(self, model_input: Any) -> Any:
        error = ValueError("bad \ud800 and \x00 text")
        BadErrorText.raised.append(error)
        raise error
