"""Options and checks the click commands share."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import click

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}
_F = TypeVar("_F", bound=Callable[..., Any])

#: ``--insecure-host``, the same for every command that reaches a registry or a URL.
INSECURE_HOST = click.option(
    "--insecure-host",
    "insecure_hosts",
    multiple=True,
    metavar="HOST",
    help=(
        "Do not verify the TLS certificate of HOST[:PORT]; a registry there may also "
        "use plain HTTP, as with docker's insecure registries (repeatable)."
    ),
)


def network_options(func: _F) -> _F:
    """Options shared by lock and pack: credentials, config file (mirrors), proxies, TLS."""
    options = [
        click.option(
            "--auth-file",
            type=click.Path(dir_okay=False),
            help="Credentials in rattler's JSON format, keyed by host (default: "
            "$RATTLER_AUTH_FILE, else ~/.rattler/credentials.json).",
        ),
        click.option(
            "--config",
            type=click.Path(dir_okay=False),
            help="Config file in pixi/rattler TOML: [mirrors], [proxy-config], "
            "[concurrency] downloads, [portpack] insecure-hosts and ca-bundle.",
        ),
        click.option(
            "--ca-bundle",
            type=click.Path(dir_okay=False),
            help="PEM file of CA certificates to trust (default: $SSL_CERT_FILE, else certifi's).",
        ),
        INSECURE_HOST,
    ]
    for option in reversed(options):
        func = option(func)
    return func


INPUT_NAMES = {
    "manifest": "manifest",
    "lockfile": "lockfile",
    "auth_file": "credentials file (--auth-file)",
    "config": "config file (--config)",
    "ca_bundle": "CA bundle (--ca-bundle)",
}


def source_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """How ``inspect`` and ``diff`` reach an archive given as a URL or reference:
    ``--ca-bundle``, ``--auth-file``, ``--netrc``, ``--insecure-host``, handed to the
    command as one ``source`` (:class:`~portpack.remote.options.SourceOptions`)."""

    @functools.wraps(func)
    def command(
        *args: Any,
        ca_bundle: str | None,
        auth_file: str | None,
        netrc_file: str | None,
        insecure_hosts: tuple[str, ...],
        **kwargs: Any,
    ) -> Any:
        from portpack.remote.options import SourceOptions

        source = SourceOptions(ca_bundle, auth_file, netrc_file, insecure_hosts)
        return func(*args, source=source, **kwargs)

    options = [
        click.option(
            "--ca-bundle", type=click.Path(dir_okay=False), help="PEM CA bundle to trust."
        ),
        click.option(
            "--auth-file",
            type=click.Path(dir_okay=False),
            help="Credentials: rattler's JSON keyed by host, or a docker/containers auth.json.",
        ),
        click.option(
            "--netrc", "netrc_file", type=click.Path(dir_okay=False), help=".netrc for URLs."
        ),
        INSECURE_HOST,
    ]
    wrapped: Callable[..., Any] = command
    for option in reversed(options):
        wrapped = option(wrapped)
    return wrapped


def inputs_checked(func: _F, **paths: Any) -> _F:
    """Check that the files named on the command line exist; return ``func`` to call.

    A missing file is a usage error (exit 2), as a missing archive is for unpack.
    """
    from portpack.errors import UsageError

    for key, what in INPUT_NAMES.items():
        path = paths.get(key)
        if path is not None and not isinstance(path, (tuple, list)):
            import os

            if not os.path.exists(path):
                raise UsageError(f"{what} {path} does not exist")
            if os.path.isdir(path):
                raise UsageError(f"{what} {path} is a directory, not a file")
    return func
