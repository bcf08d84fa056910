"""The core's builtin stores: ``memory:`` and local folders (``file:`` / paths)."""
