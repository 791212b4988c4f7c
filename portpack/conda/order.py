"""The install order of an environment's packages: rattler's topological sort.

The one order portpack installs in, packs in and settles clobbers by (pixi-pack
archives, ``pack --inject``, packing an existing prefix).  It is rattler's
(``sort_topologically``, which pixi and pixi-unpack use), so a file two packages
both hold ends up where rattler puts it: dependencies come before dependents, depth
first from the roots (packages nothing depends on), names sorted at each step so the
order does not depend on the input's.  A dependency cycle is broken first, preferring
to drop the edge from an arch package to a noarch one (so noarch python packages come
last).  Where rattler's choice of edge depends on its hash map's order (a cycle of
arch packages only), the cycle is entered from its first name in sorted order.

A dependency on a package that is not in the set (a virtual package such as
``__glibc``, or one that is missing) adds no edge.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from portpack.conda.record import PackageRecord

_Edges = dict[str, list[str]]


def dependency_name(spec: str) -> str:
    """The package name a dependency names, as rattler's sort reads it.

    The text before the first space or ``=`` (``"python >=3.8"``, ``"python=3.12"``):
    what repodata's ``depends`` hold.
    """
    return re.split(r"[ =]", spec.strip(), maxsplit=1)[0]


def install_order(records: Sequence[PackageRecord]) -> list[PackageRecord]:
    """``records`` with dependencies before dependents (rattler's order).

    Records of the same name (which an environment does not have) keep their order.
    """
    position = {name: i for i, name in enumerate(_order_names(records))}
    return sorted(records, key=lambda record: position[record.name])


def _order_names(records: Sequence[PackageRecord]) -> list[str]:
    by_name = {r.name: r for r in records}
    edges: _Edges = {n: [dependency_name(d) for d in r.depends] for n, r in by_name.items()}
    noarch = {n for n, r in by_name.items() if r.noarch}
    breaks = _cycle_breaks(_cycles(edges), noarch)
    needed = {d for n in edges for d in edges[n] if (n, d) not in breaks}
    # Roots are pushed in sorted order, so the last one is resolved first.
    stack: list[tuple[bool, str]] = [(False, n) for n in sorted(set(edges) - needed)]
    visited: set[str] = set()
    order: list[str] = []
    while stack:
        install, name = stack.pop()
        if install:
            order.append(name)
            continue
        if name in visited or name not in edges:  # not in edges: not in the set
            continue
        visited.add(name)
        stack.append((True, name))
        stack += [(False, d) for d in sorted(edges[name]) if (name, d) not in breaks]
    return order + sorted(set(edges) - set(order))


def _cycles(edges: _Edges) -> list[list[str]]:
    """Each cycle the depth-first search from every name (in sorted order) meets."""
    found: list[list[str]] = []
    visited: set[str] = set()
    for start in sorted(edges):
        # Iterative, for dependency chains of any length; ``path`` is the current chain.
        path: list[str] = []
        stack: list[tuple[str, bool]] = [(start, False)]
        while stack:
            node, leaving = stack.pop()
            if leaving:
                path.pop()
                continue
            if node in path:
                found.append(path[path.index(node) :])
                continue
            if node in visited:
                continue
            visited.add(node)
            path.append(node)
            stack.append((node, True))
            if node in edges:
                stack += [(d, False) for d in reversed(edges[node])]
    return found


def _cycle_breaks(cycles: list[list[str]], noarch: set[str]) -> set[tuple[str, str]]:
    """One edge (dependent, dependency) to ignore per cycle: the first from an arch
    package to a noarch one, else the first edge of the cycle.

    rattler takes the first pair of neighbours of which one is noarch and drops the
    edge between them in the arch-to-noarch direction (else the edge between the
    first and the last package). In a cycle of three or more that edge may not exist,
    and rattler then finds no root; the choice here is the same wherever rattler's
    edge exists.
    """
    breaks: set[tuple[str, str]] = set()
    for cycle in cycles:
        edges = [(dependent, cycle[(i + 1) % len(cycle)]) for i, dependent in enumerate(cycle)]
        into_noarch = [(a, b) for a, b in edges if a not in noarch and b in noarch]
        breaks.add(into_noarch[0] if into_noarch else edges[0])
    return breaks


__all__ = ["dependency_name", "install_order"]
