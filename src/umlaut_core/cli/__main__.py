"""``python -m umlaut_core.cli``: the ``umlaut`` console script."""

from .app import main

main()
