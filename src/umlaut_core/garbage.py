"""Bundles no version references: finding them, and deleting them safely (``umlaut gc``).

``track_model`` uploads a bundle, then registers its version. A process killed between
the two leaves a bundle that no version references; so does a copy interrupted at the
same point (re-running the copy registers it, though). :func:`collect_garbage` lists
the store's ``bundles/`` objects and compares them with every version's
``artifact_uri`` and bundle sha256. It deletes only when asked, never an object a
version references (by URI, by key, or by the sha256 its key is made of), and never
one younger than ``older_than``: an upload whose version is about to be registered
survives. The versions are read before the objects are listed and read again just
before anything is deleted, so a version registered meanwhile protects its bundle.

Run it with the tracker that owns the store: bundles of another registry sharing the
same bucket or folder would look unreferenced.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal
from urllib.parse import unquote

from .clock import utcnow
from .exceptions import ConfigurationError
from .keys import BUNDLE_PREFIX
from .protocols import ArtifactStore, Capability, ListingArtifactStore, Tracker
from .records import ModelVersion, StoredObject
from .redaction import redact

if TYPE_CHECKING:
    from ._api import Umlaut

__all__ = ["Orphan", "collect_garbage", "parse_age"]

Action = Literal["deleted", "would delete", "kept (too young)"]
_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$", re.IGNORECASE)
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}


def parse_age(text: str | float) -> dt.timedelta:
    """``"30m"``, ``"1h"``, ``"2d"``, ``"1w"``, ``"90s"`` or seconds (``"3600"``, 0)."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        seconds = float(text)
    else:
        match = _AGE.match(str(text))
        if not match:
            raise ConfigurationError(
                f"{text!r} is not an age: write seconds (3600) or a number with s, m, h, d "
                f"or w (30m, 1h, 2d)"
            )
        seconds = float(match.group(1)) * _UNITS[match.group(2).lower()]
    if seconds < 0:
        raise ConfigurationError(f"an age cannot be negative ({text!r})")
    return dt.timedelta(seconds=seconds)


@dataclass(frozen=True)
class Orphan:
    """A bundle no version references, and what ``collect_garbage`` did with it."""

    key: str
    uri: str
    size: int
    modified: dt.datetime
    age_s: float
    action: Action


def collect_garbage(
    umlaut: Umlaut,
    *,
    older_than: dt.timedelta = dt.timedelta(hours=1),
    delete: bool = False,
) -> list[Orphan]:
    """The unreferenced bundles of ``umlaut``'s artifact store, oldest first; with
    ``delete``, those older than ``older_than`` are removed.

    Raises ``ConfigurationError`` when the registry has no artifact store (its tracker
    keeps bundles) or the store cannot list its objects (it does not declare
    ``Capability.LIST_OBJECTS``).
    """
    tracker, store = umlaut.tracker, umlaut.artifact_store
    listing = _listing(store, tracker)
    referenced = _References(_versions(tracker))
    candidates = [o for o in listing.list(BUNDLE_PREFIX) if not referenced.holds(o)]
    now = utcnow()
    if delete and candidates:
        referenced = _References(_versions(tracker))  # again: registered meanwhile?
    orphans: list[Orphan] = []
    for obj in sorted(candidates, key=lambda o: (o.modified, o.key)):
        age = now - obj.modified
        if referenced.holds(obj):
            continue
        action: Action
        if age < older_than:
            action = "kept (too young)"
        elif delete:
            listing.delete(obj.uri)
            action = "deleted"
        else:
            action = "would delete"
        orphans.append(
            Orphan(obj.key, obj.uri, obj.size, obj.modified, age.total_seconds(), action)
        )
    return orphans


def _listing(store: ArtifactStore | None, tracker: Tracker) -> ListingArtifactStore:
    if store is None:
        raise ConfigurationError(
            f"{redact(tracker.uri)} keeps bundles itself and no artifact store is set: "
            f"there is no store to collect garbage in"
        )
    if Capability.LIST_OBJECTS not in getattr(store, "capabilities", frozenset()):
        raise ConfigurationError(
            f"the artifact store {redact(store.uri)} ({type(store).__name__}) cannot list "
            f"its objects (it does not declare Capability.LIST_OBJECTS), so unreferenced "
            f"bundles cannot be found"
        )
    assert isinstance(store, ListingArtifactStore)
    return store


def _versions(tracker: Tracker) -> list[ModelVersion]:
    return [mv for info in tracker.list_models() for mv in tracker.list_versions(info.name)]


class _References:
    """What the versions reference: URIs, bundle keys, whole-file sha256s."""

    def __init__(self, versions: Iterable[ModelVersion]) -> None:
        self.uris: set[str] = set()
        self.keys: set[str] = set()
        self.shas: set[str] = set()
        for mv in versions:
            self.uris.add(mv.artifact_uri)
            where = unquote(mv.artifact_uri).rfind(BUNDLE_PREFIX)
            if where >= 0:
                self.keys.add(unquote(mv.artifact_uri)[where:])
            if mv.bundle_sha256:
                self.shas.add(mv.bundle_sha256.split(":", 1)[-1].lower())

    def holds(self, obj: StoredObject) -> bool:
        name = obj.key.rsplit("/", 1)[-1].removesuffix(".zip").lower()
        return obj.uri in self.uris or obj.key in self.keys or name in self.shas
