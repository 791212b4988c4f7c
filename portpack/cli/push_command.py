"""``portpack push``: upload an archive to an OCI registry as an artifact."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from portpack.cli.common import run_reporting_errors
from portpack.cli.options import CONTEXT, INSECURE_HOST

if TYPE_CHECKING:
    from portpack.packer.push import PushResult


def push_summary(result: PushResult) -> str:
    """What a push did, in two lines: the digest, and the blobs sent and skipped."""
    from portpack.cli.common import plural

    return (
        f"Pushed {result.ref}@{result.digest}\n"
        f"  uploaded {plural(result.uploaded_blobs, 'blob')} ({result.uploaded_bytes} bytes), "
        f"skipped {plural(result.skipped_blobs, 'blob')} already there "
        f"({result.skipped_bytes} bytes)"
    )


@click.command(
    context_settings=CONTEXT,
    epilog="""\b
Examples:
  portpack push env.tar oci://registry.example.org/envs/app:1.4
  portpack pack -l pixi.lock -o - | portpack push - oci://localhost:5000/envs/app:1.5
  portpack unpack oci://registry.example.org/envs/app:1.4 -o /app""",
)
@click.argument("archive")
@click.argument("reference")
@click.option(
    "--mount-from",
    metavar="REPOSITORY",
    help="Another repository of the registry whose blobs may be linked instead of sent.",
)
@click.option(
    "--auth-file",
    type=click.Path(dir_okay=False),
    help="Credentials: rattler's JSON keyed by host, or a docker/containers auth.json "
    "(default: $REGISTRY_AUTH_FILE, containers' auth.json, ~/.docker/config.json).",
)
@click.option(
    "--ca-bundle",
    type=click.Path(dir_okay=False),
    help="PEM file of CA certificates to trust (default: the system store, $SSL_CERT_FILE).",
)
@INSECURE_HOST
@click.option("-q", "--quiet", is_flag=True, help="Print nothing on success.")
@click.option("--debug", is_flag=True, help="Show tracebacks of errors.")
def push(
    archive: str,
    reference: str,
    mount_from: str | None,
    auth_file: str | None,
    ca_bundle: str | None,
    insecure_hosts: tuple[str, ...],
    quiet: bool,
    debug: bool,
) -> None:
    """Upload the portpack ARCHIVE ('-': standard input) to the OCI registry REFERENCE
    (oci://HOST[:PORT]/REPOSITORY[:TAG]) as an artifact with one layer per package.

    Blobs the registry has already are not sent again; the manifest is tagged last.
    """
    import sys

    from portpack.packer.push import push as do_push

    source = sys.stdin.buffer if archive == "-" else archive
    result = run_reporting_errors(
        lambda: do_push(
            source,
            reference,
            mount_from=mount_from,
            auth_file=auth_file,
            ca_bundle=ca_bundle,
            insecure_hosts=insecure_hosts,
        ),
        debug,
    )
    if not quiet:
        click.echo(push_summary(result))
