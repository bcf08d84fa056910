"""``umlaut doctor``: settings and their sources, plugins, and whether stores answer."""

from __future__ import annotations

import dataclasses
import sys
import time
from collections.abc import Mapping
from typing import Any

import click

from .context import CliContext, CliError, one_line
from .output import emit_object, emit_rows, format_option, plain

__all__ = ["doctor", "masked"]


def masked(key: str, value: Any) -> Any:
    """A setting as it may be shown: URIs through ``redact``, secret-looking options
    as ``***``, the signing key only as set or not."""
    from ..registry import looks_secret, redact

    if key == "signing_key":
        return None if value is None else "*** (set)"
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {str(k): "***" if looks_secret(str(k)) else masked(str(k), v)
                for k, v in value.items()}  # fmt: skip
    if isinstance(value, (list, tuple)):
        return [masked(key, v) for v in value]
    return plain(value)


def _settings(state: CliContext) -> list[dict[str, Any]]:
    settings = state.settings
    sources = settings.sources
    rows = []
    for field in dataclasses.fields(settings):
        if field.name == "sources":
            continue
        source = sources.get(field.name, "default")
        if source == "argument":
            source = "command line"
        elif field.name == "profile" and settings.profile:
            source = "--profile" if state.profile else "environment (UMLAUT_PROFILE)"
        rows.append(
            {
                "setting": field.name,
                "value": masked(field.name, getattr(settings, field.name)),
                "source": source,
            }
        )
    return rows


def _plugins(state: CliContext) -> list[dict[str, Any]]:
    from ..registry import BackendRegistry

    pm = state.plugin_manager
    registry = BackendRegistry.from_plugins(pm)
    dists = {id(plugin): f"{d.project_name} {d.version}" for plugin, d in pm.list_plugin_distinfo()}

    def own(table: dict[str, str], name: str) -> list[str]:
        # The registry names a plugin "<distribution> (<name>)", or just its name.
        return sorted(s for s, who in table.items() if who == name or who.endswith(f"({name})"))

    rows = []
    for name, plugin in sorted(pm.list_name_plugin(), key=lambda item: str(item[0])):
        if plugin is None:
            continue
        rows.append(
            {
                "plugin": name,
                "distribution": dists.get(id(plugin), "umlaut-core (builtin)"),
                "tracker_schemes": own(registry.tracker_schemes, name),
                "artifact_schemes": own(registry.artifact_schemes, name),
            }
        )
    return rows


def _checks(state: CliContext) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    start = time.perf_counter()
    try:
        umlaut = state.umlaut()
        models = umlaut.list_models()
    except Exception as exc:
        detail = one_line(f"{type(exc).__name__}: {exc}")
        rows.append({"check": "tracker", "ok": False, "detail": detail})
        rows.append({"check": "artifact store", "ok": None, "detail": "not tried"})
        return rows
    ms = (time.perf_counter() - start) * 1000
    rows.append(
        {
            "check": "tracker",
            "ok": True,
            "detail": f"{one_line(umlaut.tracker.uri)} opened and answered in {ms:.0f} ms "
            f"({len(models)} models)",
        }
    )
    store = umlaut.artifact_store
    if store is None:
        rows.append({"check": "artifact store", "ok": True, "detail": "bundles kept by tracker"})
        return rows
    if not models:
        rows.append(
            {"check": "artifact store", "ok": True, "detail": f"{one_line(store.uri)} opened; "
             "no bundle to look for yet"}
        )  # fmt: skip
        return rows
    try:
        mv = umlaut.get_version(models[0].name)
        found = store.exists(mv.artifact_uri)
    except Exception as exc:
        rows.append(
            {"check": "artifact store", "ok": False,
             "detail": one_line(f"{type(exc).__name__}: {exc}")}
        )  # fmt: skip
        return rows
    rows.append(
        {
            "check": "artifact store",
            "ok": found,
            "detail": f"{one_line(store.uri)}: bundle of {mv.name} v{mv.version} "
            + ("found" if found else "MISSING"),
        }
    )
    return rows


@click.command()
@format_option()
@click.pass_obj
def doctor(state: CliContext, fmt: str) -> None:
    """Each setting with where it came from, the installed plugins and their URI
    schemes, and whether the tracker and the artifact store answer. Secrets are
    masked. Exits with status 1 when a check fails."""
    import umlaut_core

    settings = _settings(state)
    plugins = _plugins(state)
    checks = _checks(state)
    if fmt == "table":
        out = sys.stdout
        out.write(f"umlaut-core {umlaut_core.__version__}\n\nsettings\n")
        emit_rows(settings, fmt, ("setting", "value", "source"), out=out)
        out.write("\nplugins\n")
        emit_rows(plugins, fmt, ("plugin", "distribution", "tracker_schemes",
                                 "artifact_schemes"), out=out)  # fmt: skip
        out.write("\nchecks\n")
        emit_rows(checks, fmt, ("check", "ok", "detail"), out=out)
    else:
        emit_object(
            {
                "version": umlaut_core.__version__,
                "settings": settings,
                "plugins": plugins,
                "checks": checks,
            },
            "json" if fmt == "table" else fmt,
        )
    failed = [c["check"] for c in checks if c["ok"] is False]
    if failed:
        raise CliError(
            f"the {' and the '.join(failed)} did not answer (see checks above); fix the "
            f"settings shown, or the service they point at",
            label="DoctorError",
        )
