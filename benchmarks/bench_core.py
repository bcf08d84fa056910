"""umlaut-core on ``memory:``: what the facade adds around a model call."""

from __future__ import annotations

from _harness import Row, latency_row, measure

from umlaut_core import Umlaut
from umlaut_core.testing.models import ExampleModel, Threshold


def run(quick: bool) -> list[Row]:
    number, repeat = (200, 3) if quick else (2000, 7)
    umlaut = Umlaut("memory:")
    umlaut.track_model(ExampleModel(), "bench", stage="Production")
    model = ExampleModel()
    payload = {"revenue": 3}

    direct = measure(lambda: model.run(payload), number=number, repeat=repeat)
    run_model = measure(
        lambda: umlaut.run_model("bench", payload, stage="Production"), number=number, repeat=repeat
    )
    counter = iter(range(10**9))
    track_new = measure(
        lambda: umlaut.track_model(Threshold(next(counter)), "bench-track"),
        number=number // 10,
        repeat=repeat,
    )
    track_same = measure(
        lambda: umlaut.track_model(Threshold(0), "bench-track"), number=number // 10, repeat=repeat
    )
    return [
        latency_row(
            "run_model (trivial model)", "memory:", run_model, direct, "calling model.run directly"
        ),
        latency_row("track_model (small class, new)", "memory:", track_new, unit="ms/call"),
        latency_row("track_model (unchanged)", "memory:", track_same, unit="ms/call"),
    ]
