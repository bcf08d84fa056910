"""The conformance suite: the behaviour every umlaut backend shares.

A backend author writes one class per store::

    import pytest
    from umlaut_core.testing import TrackerSuite

    class TestMyTracker(TrackerSuite):
        @pytest.fixture
        def tracker(self, tmp_path):
            tracker = MyTracker(f"mine://{tmp_path}/db")
            yield tracker
            tracker.close()

Optional overrides: ``artifact_store`` (defaults to a folder in ``tmp_path`` unless
the tracker declares ``Capability.STORES_BUNDLES``) and ``store_uris`` (URIs a
fresh process can open, used by multi-process tests when ``MULTI_PROCESS`` is
declared). Tests use unique model names, so the fixture may reuse one database or
server across tests. Capabilities a tracker lacks skip their tests with the reason.
"""

from .artifacts import ArtifactStoreSuite, BundleIntegrityTests
from .audit import RunModelTests
from .concurrency import ConcurrencyTests
from .encoding import EncodingTests
from .selectors import StageTests
from .versions import TrackModelTests

__all__ = [
    "ArtifactStoreSuite",
    "BundleIntegrityTests",
    "ConcurrencyTests",
    "EncodingTests",
    "RunModelTests",
    "StageTests",
    "TrackModelTests",
    "TrackerSuite",
]


class TrackerSuite(
    TrackModelTests,
    StageTests,
    RunModelTests,
    EncodingTests,
    ConcurrencyTests,
    BundleIntegrityTests,
):
    """Every tracker conformance test; subclass it and provide ``tracker``."""
