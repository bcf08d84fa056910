"""umlaut quick start: track a model, promote it, run it, read its audit trail.

Runs on the embedded default (nothing to configure): metadata goes to
``.umlaut/umlaut.db`` (SQLite) and model bundles to ``.umlaut/artifacts`` in the
current directory. From a fresh clone::

    python3 -m venv .venv
    .venv/bin/pip install ./ ./plugins/umlaut-sql
    .venv/bin/python examples/quickstart.py
"""

from __future__ import annotations

from umlaut_core import Umlaut


class ExampleModel:
    """Business logic worth tracking: is the revenue above 5?"""

    def business_logic(self, revenue: int) -> bool:
        return revenue > 5

    def run(self, model_input: dict) -> bool:
        return self.business_logic(revenue=model_input.get("revenue"))


def main() -> None:
    with Umlaut() as um:  # sqlite:///.umlaut/umlaut.db + .umlaut/artifacts
        mv = um.track_model(ExampleModel(), "Revenue Forecast", description="revenue > 5")
        state = "new version" if mv.created else "unchanged, reusing version"
        print(f"tracked 'Revenue Forecast': {state} {mv.version} ({mv.digest[:19]}…)")

        um.promote("Revenue Forecast", mv.version, "Staging", reason="quick start")
        print(f"promoted version {mv.version} to Staging")

        for revenue in (3, 8, 12):
            result = um.run_model("Revenue Forecast", {"revenue": revenue}, stage="Staging")
            print(f"run_model(revenue={revenue}) -> {result}")
        try:
            um.run_model("Revenue Forecast", {"revenue": None}, stage="Staging")
        except TypeError as exc:  # the model's own error, unchanged, and audited
            print(f"run_model(revenue=None) raised TypeError: {exc}")

        print("\naudit history (newest first):")
        print(f"{'started (UTC)':<26} {'version':>7}  {'selector':<14} {'input':<18} result")
        for r in um.history("Revenue Forecast", limit=8):
            result = r.output if r.status == "ok" else f"error: {r.error_type}"
            started = r.started_at.strftime("%Y-%m-%d %H:%M:%S.%f")
            print(f"{started:<26} {r.version:>7}  {r.selector:<14} {r.inputs_json:<18} {result}")
        print(f"\n{um!r}")


if __name__ == "__main__":
    main()
