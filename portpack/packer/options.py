"""What ``pack`` and ``plan`` are asked to do, as typed options built once.

:class:`Inputs` says what to pack (a lock, a manifest, specs or an installed prefix,
with the packages to inject), :class:`Network` how and where packages are fetched,
:class:`Output` what is written (and :class:`SelfExtracting` the self-extracting
archive's own options).  Each checks its own combinations when it is made, so a
contradiction is a :class:`~portpack.errors.UsageError` before anything is read or
downloaded.  :func:`portpack.pack`, :func:`portpack.packer.plan.plan` and the
``portpack pack`` command all make them with :meth:`PackOptions.from_keywords`.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, BinaryIO, TypeVar

from portpack.errors import UsageError

if TYPE_CHECKING:
    from portpack.net.config import NetworkConfig
    from portpack.progress import Reporter

StrPath = str | os.PathLike[str]
#: What ``pack`` writes: portpack's zstd archive, or pixi-pack's plain tar layout.
ARCHIVE_FORMATS = ("portpack", "pixi-pack")
_T = TypeVar("_T")


def _tuple(value: Any) -> tuple[Any, ...]:
    """A sequence option as a tuple (one string is one item, not its characters)."""
    return (value,) if isinstance(value, (str, os.PathLike)) else tuple(value)


def _freeze(options: object, *names: str) -> None:
    for name in names:
        object.__setattr__(options, name, _tuple(getattr(options, name)))


@dataclass(frozen=True)
class Inputs:
    """What to pack: a lockfile, a manifest, specs to solve, or an installed prefix."""

    specs: tuple[str, ...] = ()
    channels: tuple[str, ...] = ()
    manifest: StrPath | None = None
    lockfile: StrPath | None = None
    environment: str = "default"
    platform: str | None = None
    relock: bool = False
    virtual_packages: tuple[str, ...] = ()
    prefix: StrPath | None = None
    """An installed environment to pack instead of a lock (see :mod:`.prefix_source`)."""
    unowned: str | None = None
    """With ``prefix``: ``"refuse"`` or ``"ignore"`` files its records do not describe."""
    inject: tuple[StrPath, ...] = ()
    """Local ``.conda``/``.tar.bz2`` packages and ``.whl`` wheels to add."""
    ignore_pypi_non_wheel: bool = False
    """Skip the lock's PyPI packages that are not wheels instead of refusing them."""

    def __post_init__(self) -> None:
        _freeze(self, "specs", "channels", "virtual_packages", "inject")
        if self.prefix is None:
            if self.unowned is not None:
                raise UsageError("--unowned needs --prefix")
        elif self.specs or self.manifest or self.lockfile or self.relock:
            raise UsageError(
                "give either --prefix or specs/--manifest/--lockfile/--relock, not both"
            )

    @property
    def conda_files(self) -> list[StrPath]:
        """The injected conda packages."""
        return [p for p in self.inject if not str(p).endswith(".whl")]

    @property
    def wheel_files(self) -> list[StrPath]:
        """The injected wheels."""
        return [p for p in self.inject if str(p).endswith(".whl")]


@dataclass(frozen=True)
class Network:
    """How and where packages are fetched (see :mod:`portpack.net.config`)."""

    config: StrPath | None = None
    """pixi/rattler TOML: mirrors, proxies, download concurrency."""
    auth_file: StrPath | None = None
    """rattler's credentials JSON."""
    ca_bundle: StrPath | None = None
    insecure_hosts: tuple[str, ...] = ()
    concurrency: int | None = None
    """Parallel downloads (default: the config file's, else 50)."""
    cache_dir: StrPath | None = None
    no_cache: bool = False
    """Download into a temporary directory instead of the shared cache."""

    def __post_init__(self) -> None:
        _freeze(self, "insecure_hosts")
        if self.no_cache and self.cache_dir is not None:
            raise UsageError("give either --cache-dir or --no-cache, not both")

    def load(self, reporter: Reporter) -> NetworkConfig:
        """The network configuration these options name (files read, checked)."""
        from portpack.net.config import load_network_config

        return load_network_config(
            self.config,
            auth_file=self.auth_file,
            ca_bundle=self.ca_bundle,
            insecure_hosts=self.insecure_hosts,
            reporter=reporter,
        )


@dataclass(frozen=True)
class SelfExtracting:
    """A self-extracting archive's options (see :mod:`portpack.packer.selfextract`)."""

    bootstrap_python: StrPath | None = None
    """The python that unpacks: a match spec or a python package file."""
    zstandard_wheel: StrPath | None = None
    """The zstandard wheel for that python, instead of one from ``wheel_index``."""
    wheel_index: str | None = None
    """PEP 691 index to fetch the zstandard wheel from (default: PyPI)."""


@dataclass(frozen=True)
class Output:
    """What ``pack`` writes, and where: a file, a folder or a binary stream."""

    target: StrPath | BinaryIO | None = "environment.tar"
    """A path, or an open binary stream (never ``"-"``: the command line resolves it).
    None: nothing is written (:func:`portpack.packer.plan.plan`)."""
    archive_format: str = "portpack"
    directory_only: bool = False
    """Write the archive's members into the folder ``target`` instead of one file."""
    executable: SelfExtracting | None = None
    """Write a self-extracting archive with these options."""

    def __post_init__(self) -> None:
        if self.archive_format not in ARCHIVE_FORMATS:
            raise UsageError(
                f"unknown archive format {self.archive_format!r}; "
                f"choose {' or '.join(ARCHIVE_FORMATS)}"
            )
        if self.executable is not None and self.archive_format != "portpack":
            raise UsageError("--create-executable makes portpack archives only")
        if self.directory_only and self.executable is not None:
            raise UsageError("--directory-only writes a folder: not with --create-executable")
        if self.directory_only and self.stream is not None:
            raise UsageError("--directory-only writes a folder, not to standard output or a stream")
        if isinstance(self.target, (str, os.PathLike)) and os.fspath(self.target) == "-":
            raise UsageError(
                "output '-' is the command line's name for standard output",
                hint="From Python, pass a binary stream, e.g. output=sys.stdout.buffer.",
            )

    @property
    def stream(self) -> BinaryIO | None:
        """The stream to write to, if the target is one."""
        if self.target is None or isinstance(self.target, (str, os.PathLike)):
            return None
        return self.target

    @property
    def path(self) -> StrPath | None:
        """The file or folder to write, if the target is one."""
        return self.target if isinstance(self.target, (str, os.PathLike)) else None

    def check(self) -> None:
        """Check, creating nothing, that the target can be written (before any download)."""
        from portpack import outside

        if self.path is None:
            return
        if self.directory_only:
            outside.check_directory(self.path)
            if os.path.isdir(self.path) and os.listdir(self.path):
                raise UsageError(f"{os.path.abspath(self.path)} already exists and is not empty")
        else:
            outside.check_file(self.path)


@dataclass(frozen=True)
class PackOptions:
    """Everything ``pack`` (and ``plan``) is asked: inputs, network and output."""

    inputs: Inputs = field(default_factory=Inputs)
    network: Network = field(default_factory=Network)
    output: Output = field(default_factory=Output)

    @classmethod
    def from_keywords(cls, keywords: Mapping[str, Any]) -> PackOptions:
        """The options named by :func:`portpack.pack`'s keyword arguments.

        Each key is a field of :class:`Inputs`, :class:`Network`, :class:`Output` or
        :class:`SelfExtracting`, or ``output`` (the target) or ``create_executable``;
        any other key is a :class:`TypeError` (a caller's mistake, not the user's).
        """
        left = dict(keywords)
        if "output" in left:
            left["target"] = left.pop("output")
        wants_executable = bool(left.pop("create_executable", False))
        executable = _pick(SelfExtracting, left)
        if not wants_executable and executable != SelfExtracting():
            raise UsageError(
                "--bootstrap-python, --zstandard-wheel and --wheel-index need --create-executable"
            )
        options = cls(
            inputs=_pick(Inputs, left),
            network=_pick(Network, left),
            output=_pick(Output, left, executable=executable if wants_executable else None),
        )
        if left:
            raise TypeError(f"unknown pack options: {', '.join(sorted(left))}")
        return options


def _pick(cls: type[_T], keywords: dict[str, Any], **given: Any) -> _T:
    """``cls`` made of the ``keywords`` that are its fields (removed from ``keywords``)."""
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    values = {name: keywords.pop(name) for name in names & keywords.keys()}
    return cls(**values, **given)
