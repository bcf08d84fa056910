"""The packer: any runnable object → a self-describing, content-hashed bundle.

Usable on its own::

    from umlaut_core import get_plugin_manager
    from umlaut_core.packer import pack, unpack

    bundle = pack(model, get_plugin_manager())
    loaded = unpack(bundle.data, get_plugin_manager(), expected_digest=bundle.digest)
    loaded.run({"revenue": 3})

A bundle is a zip with ``MANIFEST.json`` (flavor, entry point, Python, cloudpickle
and key package versions, optional input signature, payload sha256, digest) and
``payload.pkl``. Loading checks the payload hash and the registered digest before
unpickling, then applies the environment policy (``strict``/``warn``/``ignore``).
"""

from ._bundle import (
    BUNDLE_FORMAT,
    Bundle,
    EnvPolicy,
    LoadedModel,
    UmlautEnvironmentWarning,
    compute_digest,
    pack,
    read_manifest,
    unpack,
)
from .flavors import FUNCTION, PYTHON_CLASS, SKLEARN, Flavor

__all__ = [
    "BUNDLE_FORMAT",
    "FUNCTION",
    "PYTHON_CLASS",
    "SKLEARN",
    "Bundle",
    "EnvPolicy",
    "Flavor",
    "LoadedModel",
    "UmlautEnvironmentWarning",
    "compute_digest",
    "pack",
    "read_manifest",
    "unpack",
]
