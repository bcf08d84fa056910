"""The core stays backend-free and its public surface is deliberate."""

from __future__ import annotations

import subprocess
import sys

import umlaut_core


class TestImports:
    """Importing umlaut_core pulls in no backend library."""

    def test_no_backend_library_is_imported(self) -> None:
        code = (
            "import sys, umlaut_core, umlaut_core.packer, umlaut_core.testing;"
            # The concerns' public packages too: their numeric modules (digests,
            # profiles, drift) are imported only inside the calls that need them.
            "import umlaut_core.experiments, umlaut_core.datasets;"
            "umlaut_core.get_plugin_manager();"
            # numpy and pandas values are recognised by module name when encoding.
            "umlaut_core.encoding.encode_input({'a': [1, {'b': 2.5}]});"
            "heavy = ('sqlalchemy', 'mlflow', 'boto3', 'botocore', 'numpy', 'pandas',"
            " 'pyarrow', 'scipy', 'starlette', 'dask');"
            "print(sorted(m for m in heavy if m in sys.modules))"
        )
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        )
        assert out.stdout.strip() == "[]"

    def test_command_line_libraries_are_not_imported(self) -> None:
        """click and rich belong to the console script (umlaut_core.cli) alone."""
        code = (
            "import sys, umlaut_core;"
            "umlaut_core.get_plugin_manager();"
            "print(sorted(m for m in ('click', 'rich', 'umlaut_core.cli') if m in sys.modules))"
        )
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        )
        assert out.stdout.strip() == "[]"


class TestPublicNames:
    """__all__ lists exactly the public names of the package."""

    def test_all_matches_public_names(self) -> None:
        public = {
            name
            for name, value in vars(umlaut_core).items()
            if not name.startswith("_") and not isinstance(value, type(sys))
        }
        assert set(umlaut_core.__all__) == public | {"__version__"}
        assert len(umlaut_core.__all__) == len(set(umlaut_core.__all__))
