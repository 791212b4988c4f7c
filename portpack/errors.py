"""Typed errors raised by portpack's library.

Every error carries the context a user needs to act on it: which package, which
file, which URL.  The CLI turns them into one-paragraph messages; the library
never prints.
"""

from __future__ import annotations


class PortpackError(Exception):
    """Base class of every error portpack raises on purpose."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message}\n{self.hint}"
        return self.message


class UsageError(PortpackError):
    """The caller asked for something that cannot be done (bad option, bad spec)."""


class ManifestError(PortpackError):
    """A manifest (pixi.toml, pyproject.toml, environment.yml) cannot be used."""


class LockfileError(PortpackError):
    """A lockfile cannot be read, or lacks the requested environment or platform."""


class SolveError(PortpackError):
    """The solver found no environment satisfying the specs."""


class FetchError(PortpackError):
    """A package could not be downloaded or failed verification."""

    def __init__(self, message: str, *, url: str | None = None, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.url = url


class PackageError(PortpackError):
    """A conda package is malformed or cannot be read."""


class ArchiveError(PortpackError):
    """A portpack archive is malformed, corrupt, truncated or of an unknown version."""


class UnsafeArchiveError(ArchiveError):
    """An archive member would write outside the target or is not allowed."""


class PreconditionError(PortpackError):
    """The target cannot receive this environment (platform, glibc, prefix length, disk)."""


class InstallError(PortpackError):
    """Writing the environment failed (disk full, permissions, a link script failed)."""


class IncompleteEnvironmentError(PackageError):
    """Packages of the environment depend on packages it does not contain."""

    def __init__(
        self, message: str, *, missing: list[tuple[str, str]], hint: str | None = None
    ) -> None:
        super().__init__(message, hint=hint)
        self.missing = missing
        """``(package, dependency)`` pairs, one per unsatisfied dependency."""


class PrefixContentError(UsageError):
    """An environment to pack (``pack --prefix``) holds what its records do not describe."""

    def __init__(
        self,
        message: str,
        *,
        unowned: list[str],
        modified: list[str],
        missing: list[str],
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.unowned = unowned
        """Files no conda package of the environment owns."""
        self.modified = modified
        """``path: reason`` of files a package owns whose content changed."""
        self.missing = missing
        """Files a package owns that are not in the prefix."""


class LocalChangesError(UsageError):
    """``unpack --update``: files of packages it would keep were changed in the environment."""

    def __init__(self, message: str, *, modified: list[str], hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.modified = modified
        """``path: reason`` of each changed file (``--force`` replaces them)."""
