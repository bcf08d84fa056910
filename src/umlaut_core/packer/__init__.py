"""The packer: any runnable object → a self-describing, content-hashed bundle.

Usable on its own::

    from umlaut_core import get_plugin_manager
    from umlaut_core.packer import pack, unpack

    bundle = pack(model, get_plugin_manager())
    loaded = unpack(
        bundle.data,
        get_plugin_manager(),
        expected_digest=bundle.digest,
        expected_sha256=bundle.sha256,
    )
    loaded.run({"revenue": 3})

A bundle is a zip with ``MANIFEST.json`` (flavor, entry point, Python, cloudpickle
and key package versions, optional input signature, payload sha256, digest) and
``payload.pkl``. ``Bundle.digest`` names what the model *is* (equal for the same model
signed or not); ``Bundle.sha256`` is the hex sha256 of the whole file, which stores
key bundles by (:func:`umlaut_core.keys.bundle_key`). Loading checks the whole file's
sha256 first (before the zip is opened), then the payload hash and the registered
digest, all before unpickling, then applies the environment policy
(``strict``/``warn``/``ignore``).

Packing pickles by value the user's own code: ``__main__`` and every imported module
importable from the folder holding the object's top-level package or script, but not
installed code (site-packages, the standard library, files of installed
distributions, editable installs included). Objects holding file objects (any
``io.IOBase`` but the standard streams) raise ``PackingError``; async ``run`` methods,
async functions and async generators raise ``UnsupportedModelError``. Classes packed by
value keep their identity when loaded in the process that packed them.
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
