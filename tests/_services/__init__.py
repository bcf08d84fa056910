"""Session fixtures that start real servers on loopback for the test suite.

Each module imports its server's Python packages lazily, inside fixtures, so every
tox env can load all of them. A server that cannot be started skips its tests with
the reason, except under CI (``CI`` set), where it fails: CI must run them.
"""
