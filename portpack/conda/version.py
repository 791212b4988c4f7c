"""Conda versions and version constraints: the one parser (standard library only).

Used where py-rattler is not at hand: the unpacker's checks of ``__glibc`` and the like
(:mod:`portpack.unpacker.preconditions`) and ``inspect``'s oldest glibc
(:mod:`portpack.archive.summary`).  The solver and the manifest reader use rattler's own
types for what they hand to rattler.

Versions are ordered as conda orders them (conda's ``VersionOrder``, CEP draft "The
MatchSpec grammar"): an optional epoch ``N!``; the version split into components at
``.``, ``_`` and ``-``, each component into runs of digits (compared as integers) and
letters (compared case-insensitively, below integers), with ``0`` put in front of a
component that starts with a letter; ``dev`` below every other atom and ``post`` above;
a missing atom or component counts as ``0`` (``1.1 == 1.1.0``, ``1.1a1 < 1.1``); an
optional local version after ``+`` decides only between equal versions (conda's order:
``2.17+a < 2.17``; virtual packages have none); a trailing
``_`` (openssl's ``1.1_``) sorts between ``dev`` and the letters.

Constraints (the version part of a match spec) support:

- ``>=``, ``>``, ``<=``, ``<``, ``==``, ``!=`` (relational, in the order above);
- ``=V`` and ``V.*`` / ``V*`` (fuzzy: the version starts with V's components), ``!=V.*``
  (does not start with them), ``~=V`` (``>=V`` and starts with V less its last component);
- a bare ``V`` (exact, as in a ``name V`` dependency) and ``*`` (any version);
- ``>=V.*``, read as ``>=V`` (as conda and rattler read it);
- ``,`` (and) binding tighter than ``|`` (or), and parentheses.

Spaces around operators and separators are tolerated.  Refused with an error naming the
constraint: an empty constraint or part, an unknown operator, two constraints separated
by a space, a wildcard anywhere but at the end (conda's regular-expression versions), a
wildcard after ``==``, ``>``, ``<``, ``<=`` or ``~=`` (conda and rattler read them
differently), empty version segments (``2..17``), and characters a conda version cannot
hold.  :func:`split_dependency` reads ``name [version [build]]`` dependencies (the
build is not checked); the bracket form ``name[version=...]`` is refused.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass

from portpack.errors import PackageError, PortpackError

_VERSION = re.compile(r"(?:(\d+)!)?([a-z0-9_.\-]+?)(?:\+([a-z0-9_.\-]+))?")
_ATOM = re.compile(r"\d+|[a-z]+")
_NAME = re.compile(r"\s*([A-Za-z0-9_][A-Za-z0-9_.\-]*)\s*")
_OPERATORS = (">=", "<=", "==", "!=", "~=", ">", "<", "=")
#: ``version build``: a last word after a space that neither ends a constraint nor starts one.
_WITH_BUILD = re.compile(r"(.*?[^\s,|<>=!~(])\s+([^\s,|<>=!~()]\S*)")
_TOKEN = re.compile(r"\s*(\(|\)|,|\||[^(),|]+)")

# Ranks of an atom, lowest first; strings compare among themselves, integers likewise.
_DEV, _UNDERSCORE, _STRING, _INT, _POST = range(5)
_Atom = tuple[int, int | str]
_ZERO: _Atom = (_INT, 0)


def _atom(text: str) -> _Atom:
    if text.isdigit():
        return (_INT, int(text))
    if text == "dev":
        return (_DEV, "")
    if text == "post":
        return (_POST, "")
    return (_STRING, text)


def _components(text: str, where: str) -> tuple[tuple[_Atom, ...], ...]:
    """``"1.2g_beta15"`` -> ``((1,), (2, 'g'), (0, 'beta', 15))`` (as ranked atoms)."""
    openssl = text.endswith("_")
    parts = re.split(r"[._\-]", text[:-1] if openssl else text)
    if "" in parts:
        raise ValueError(f"{where} {text!r} has an empty segment")
    result = []
    for part in parts:
        found = _ATOM.findall(part)
        if "".join(found) != part:
            raise ValueError(f"{where} {text!r} has an unexpected character in {part!r}")
        atoms = [_atom(a) for a in found]
        if atoms[0][0] != _INT:
            atoms.insert(0, _ZERO)
        result.append(tuple(atoms))
    if openssl:
        result[-1] += ((_UNDERSCORE, ""),)
    return tuple(result)


def _compare_lists(a: tuple[tuple[_Atom, ...], ...], b: tuple[tuple[_Atom, ...], ...]) -> int:
    """conda's comparison: missing atoms and components count as ``0``."""
    for i in range(max(len(a), len(b))):
        ca = a[i] if i < len(a) else ()
        cb = b[i] if i < len(b) else ()
        for j in range(max(len(ca), len(cb))):
            x = ca[j] if j < len(ca) else _ZERO
            y = cb[j] if j < len(cb) else _ZERO
            if x != y:
                return -1 if x < y else 1
    return 0


def _strip(components: tuple[tuple[_Atom, ...], ...]) -> tuple[tuple[_Atom, ...], ...]:
    """The canonical form: trailing zeros of each component and empty components dropped."""
    stripped = [
        c[: max((i + 1 for i, a in enumerate(c) if a != _ZERO), default=0)] for c in components
    ]
    while stripped and not stripped[-1]:
        stripped.pop()
    return tuple(stripped)


@functools.total_ordering
@dataclass(frozen=True, eq=False)
class Version:
    """A conda version, ordered as conda orders versions; ``str()`` is the text read."""

    text: str
    epoch: int
    release: tuple[tuple[_Atom, ...], ...]
    local: tuple[tuple[_Atom, ...], ...]

    def __str__(self) -> str:
        return self.text

    def _cmp(self, other: Version) -> int:
        if self.epoch != other.epoch:
            return -1 if self.epoch < other.epoch else 1
        return _compare_lists(self.release, other.release) or _compare_lists(
            self.local, other.local
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Version) and self._cmp(other) == 0

    def __lt__(self, other: Version) -> bool:
        return self._cmp(other) < 0

    def __hash__(self) -> int:
        return hash((self.epoch, _strip(self.release), _strip(self.local)))

    def starts_with(self, head: Version) -> bool:
        """Whether this version begins with ``head``'s components (``2.28.1`` with ``2.28``).

        All but ``head``'s last component must be equal, and that last one a prefix of
        this version's component there (``1.1a1`` starts with ``1.1``, ``2.280`` does not
        start with ``2.28``).
        """
        if self.epoch != head.epoch or not head.release:
            return self.epoch == head.epoch
        n = len(head.release) - 1
        if _compare_lists(self.release[:n], head.release[:n]) != 0:
            return False
        mine = self.release[n] if n < len(self.release) else (_ZERO,)
        last = head.release[n]
        padded = mine + (_ZERO,) * (len(last) - len(mine))
        return padded[: len(last)] == last


def parse_version(
    text: str, where: str = "a version", error: type[PortpackError] = PackageError
) -> Version:
    """Parse a conda version; raise ``error`` naming ``where`` and ``text`` if it is none."""
    try:
        return _version(text)
    except ValueError as exc:
        raise error(f"{where}: {text!r} is not a conda version ({exc})") from None


def _version(text: str) -> Version:
    match = _VERSION.fullmatch(text.strip().lower())
    if not match:
        raise ValueError("a version holds letters, digits, '.', '_', '-', '!' and '+'")
    epoch, main, local = match.groups()
    return Version(
        text=text.strip(),
        epoch=int(epoch or 0),
        release=_components(main, "the version"),
        local=_components(local, "the local version") if local else (),
    )


@dataclass(frozen=True)
class VersionConstraint:
    """A parsed constraint: :meth:`matches` a version, :meth:`lower_bound` of what it admits."""

    text: str
    _test: Callable[[Version], bool]
    _low: Version | None
    _bounded: bool
    """False when some version below every bound is admitted (``<3``, ``*``, ``!=2``)."""

    def matches(self, version: str | Version) -> bool:
        """Whether ``version`` satisfies the constraint (a string is parsed first)."""
        if isinstance(version, str):
            version = parse_version(version)
        return self._test(version)

    def lower_bound(self) -> Version | None:
        """The lowest version the constraint admits, as far as it bounds it from below.

        ``>=2.17,<3`` -> ``2.17``; ``2.17.*`` -> ``2.17``; ``>2.12|>=2.5`` -> ``2.5``;
        ``>2.17`` -> ``2.17`` (the bound itself); ``<3``, ``*`` -> None.
        """
        return self._low if self._bounded else None


def parse_constraint(
    text: str, where: str = "a dependency", error: type[PortpackError] = PackageError
) -> VersionConstraint:
    """Parse a conda version constraint (see the module's docstring for what is supported).

    Raises ``error`` saying ``where`` the constraint is from, the constraint and what is
    wrong with it.
    """
    try:
        tokens = _tokens(text)
        node, rest = _parse_or(tokens)
        if rest:
            raise ValueError(f"unexpected {rest[0]!r}")
    except ValueError as exc:
        raise error(f"{where}: cannot understand the version constraint {text!r}: {exc}") from None
    return VersionConstraint(text.strip(), *node)


# A parsed node: the test, its lower bound, and whether that bound bounds it.
_Node = tuple[Callable[[Version], bool], Version | None, bool]


def _tokens(text: str) -> list[str]:
    tokens: list[str] = []
    position = 0
    stripped = text.rstrip()
    while position < len(stripped):
        match = _TOKEN.match(stripped, position)
        if match is None:  # pragma: no cover - every character is a separator or a part
            raise ValueError(f"unexpected {stripped[position:]!r}")
        tokens.append(match.group(1).strip())
        position = match.end()
    if not tokens:
        raise ValueError("it is empty")
    return tokens


def _parse_or(tokens: list[str]) -> tuple[_Node, list[str]]:
    nodes = []
    node, tokens = _parse_and(tokens)
    nodes.append(node)
    while tokens and tokens[0] == "|":
        node, tokens = _parse_and(tokens[1:])
        nodes.append(node)
    if len(nodes) == 1:
        return nodes[0], tokens
    tests = [n[0] for n in nodes]
    bounded = all(n[2] for n in nodes)
    low = min((n[1] for n in nodes if n[1] is not None), default=None) if bounded else None
    return ((lambda v: any(t(v) for t in tests)), low, bounded), tokens


def _parse_and(tokens: list[str]) -> tuple[_Node, list[str]]:
    nodes = []
    node, tokens = _parse_term(tokens)
    nodes.append(node)
    while tokens and tokens[0] == ",":
        node, tokens = _parse_term(tokens[1:])
        nodes.append(node)
    if len(nodes) == 1:
        return nodes[0], tokens
    tests = [n[0] for n in nodes]
    lows = [n[1] for n in nodes if n[2] and n[1] is not None]
    return ((lambda v: all(t(v) for t in tests)), max(lows, default=None), bool(lows)), tokens


def _parse_term(tokens: list[str]) -> tuple[_Node, list[str]]:
    if not tokens or tokens[0] in (",", "|", ")"):
        found = f"{tokens[0]!r}" if tokens else "the end"
        raise ValueError(f"expected a version or '(' but found {found}")
    if tokens[0] == "(":
        node, rest = _parse_or(tokens[1:])
        if not rest or rest[0] != ")":
            raise ValueError("a '(' is not closed")
        return node, rest[1:]
    return _constraint(tokens[0]), tokens[1:]


def _constraint(text: str) -> _Node:
    """One relational, fuzzy or exact constraint (``>=2.17``, ``2.28.*``, ``2.17``)."""
    if text == "*":
        return (lambda v: True), None, False
    op = next((o for o in _OPERATORS if text.startswith(o)), "")
    body = text[len(op) :].strip()
    if " " in body or "\t" in body:
        raise ValueError(f"a space inside {text!r} (join constraints with ',' or '|')")
    if not body:
        raise ValueError(f"{text!r} has no version")
    if body[0] in "<>=!~":
        raise ValueError(f"unknown operator in {text!r}")
    wildcard = body.endswith("*")
    head = body.rstrip("*").removesuffix(".") if wildcard else body
    if "*" in head:
        raise ValueError(f"a wildcard is supported only at the end ({text!r})")
    if wildcard and op not in ("", "=", "!=", ">="):
        raise ValueError(f"{op!r} with a wildcard ({text!r}) is ambiguous")
    if wildcard and op == ">=":
        wildcard = False  # conda and rattler read ">=2.17.*" as ">=2.17"
    version = _version(head)
    if wildcard or op == "=":
        if op == "!=":
            return (lambda v: not v.starts_with(version)), version, False
        return (lambda v: v.starts_with(version)), version, True
    return _relational(op, version, text)


def _relational(op: str, bound: Version, text: str) -> _Node:
    if op == "~=":
        if len(bound.release) < 2:
            raise ValueError(f"'~=' needs at least two components ({text!r})")
        head = Version(bound.text, bound.epoch, bound.release[:-1], ())
        return (lambda v: v >= bound and v.starts_with(head)), bound, True
    tests: dict[str, Callable[[Version], bool]] = {
        ">=": lambda v: v >= bound,
        ">": lambda v: v > bound,
        "<=": lambda v: v <= bound,
        "<": lambda v: v < bound,
        "==": lambda v: v == bound,
        "": lambda v: v == bound,
        "!=": lambda v: v != bound,
    }
    return tests[op], bound, op in (">=", ">", "==", "")


def split_dependency(
    dependency: str, where: str = "a dependency", error: type[PortpackError] = PackageError
) -> tuple[str, str]:
    """``"__glibc >=2.17,<3.0.a0"`` (or ``"__glibc>=2.17"``) -> ``("__glibc", ">=2.17,<3.0.a0")``.

    The version part is ``""`` when the dependency gives none.  A build string (the
    third part of ``name version build``) is dropped: these checks read versions only.
    The bracket form (``name[version=...]``) is refused with ``error``.
    """
    match = _NAME.match(dependency)
    if not match:
        raise error(f"{where}: cannot read the dependency {dependency!r}")
    rest = dependency[match.end() :].strip()
    if rest.startswith("["):
        raise error(
            f"{where}: the dependency {dependency!r} uses the bracket form, which is not "
            "supported here"
        )
    with_build = _WITH_BUILD.fullmatch(rest)
    return match.group(1), with_build.group(1) if with_build else rest
