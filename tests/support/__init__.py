"""Offline test fixtures: locally built conda packages, channels and helpers.

Nothing here touches the network: every package is written by :mod:`.pkgwriter`,
built from the running interpreter (:mod:`.pythonpkg`) or built with py-rattler-build
from a recipe under ``recipes/`` (:mod:`.channel`). :mod:`.cache` keeps the results
across test sessions.
"""
