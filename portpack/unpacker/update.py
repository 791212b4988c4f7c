"""``unpack --update``: bring an environment to a new archive, writing only what changed.

The plan (:mod:`portpack.unpacker.update_plan`) says which packages are reused. The
new environment is built in the staging directory beside the old one exactly as a
fresh unpack builds it, package by package in install order: a reused package's
files are hard linked from the old environment (:mod:`portpack.install.reuse`),
every other package is installed from the archive; then the wheels, the files no
package owns (kept unless dropped), conda-meta. The finished environment is swapped
with the old one (:mod:`portpack.unpacker.staging`, ``RENAME_EXCHANGE``), which serves
until then and survives any failure, interrupt or SIGKILL untouched: no file of it
is ever written, only linked.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from portpack._platform import host_glibc_version
from portpack.archive import format as fmt
from portpack.archive.segment_decode import iter_packages, iter_wheels
from portpack.archive.segment_source import SegmentSource
from portpack.conda.info import read_info
from portpack.errors import ArchiveError, PortpackError
from portpack.install.destination import Destination
from portpack.install.linker import LinkContext, link_package
from portpack.install.prefix_state import PrefixState
from portpack.install.reuse import OldTree, link_reused
from portpack.paths import RelPath, safe_relpath
from portpack.progress import Reporter
from portpack.unpacker import finish, preconditions, staging
from portpack.unpacker.finish import Installed
from portpack.unpacker.update_plan import UpdatePlan, plan_update


class UpdateJob(Protocol):
    """What the update needs of its unpack call (:class:`portpack.unpacker.streaming._Job`)."""

    out: Path
    force: bool
    run_link_scripts: bool
    strict: bool
    shell: str
    reporter: Reporter
    keep_unowned: bool
    wheels: list[str]

    @property
    def prefix(self) -> Path: ...


@dataclass
class UpdateReport:
    """What an update did besides installing (see :class:`UnpackResult`)."""

    plan: UpdatePlan
    kept: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    linked_files: int = 0
    copied_files: int = 0


def run(
    job: UpdateJob, metadata: fmt.Metadata, source: SegmentSource, state: PrefixState
) -> tuple[Installed, Path, UpdateReport]:
    """Update the environment ``state`` describes to the archive of ``source``."""
    plan = plan_update(state, metadata, job.prefix)
    plan.check_local_changes(job.force)
    _preconditions(metadata, plan, job)
    finish.check_wheels(metadata, source.name)
    target = staging.update_target(job.prefix)
    report = UpdateReport(plan)

    def fill(dest: Destination) -> Installed:
        tree = OldTree(str(job.prefix))
        try:
            linked = _install(job, metadata, source, plan, tree, dest)
            report.kept, report.dropped = _carry_unowned(job, plan.unowned, tree, dest)
        finally:
            tree.close()
        report.linked_files, report.copied_files = tree.linked, tree.copied
        finish.write_conda_meta(dest, linked, source.name, job.prefix)
        return linked

    def placed(linked: Installed) -> Path:
        if job.run_link_scripts:
            finish.run_link_scripts(job.prefix, [record for record, _ in linked])
        return finish.write_activation(job.out, job.prefix, job.shell)

    linked, script = staging.build(target, 0, fill, placed)
    finish.write_stat_index(job.prefix, linked, job.reporter)
    return linked, script, report


def _preconditions(meta: fmt.Metadata, plan: UpdatePlan, job: UpdateJob) -> None:
    """As a fresh unpack's, with room needed only for what is not linked."""
    preconditions.check_platform(meta.platform)
    preconditions.check_glibc(meta.virtual_requirements, host_glibc_version())
    preconditions.check_prefix_length(meta.min_binary_placeholder, str(job.prefix))
    needed = sum(e.installed_size for e in meta.packages if e.name not in plan.reuse)
    needed += sum(w.installed_size for w in meta.wheels)
    preconditions.check_disk_space(needed, str(job.out))


def _install(
    job: UpdateJob,
    meta: fmt.Metadata,
    source: SegmentSource,
    plan: UpdatePlan,
    tree: OldTree,
    dest: Destination,
) -> Installed:
    """Every package in install order, reused or from the archive; then the wheels."""
    reporter = job.reporter
    ctx = LinkContext(
        destination=dest,
        prefix=str(job.prefix),
        python=finish.python_info(meta),
        warn=reporter.warning,
        strict=job.strict,
    )
    fresh = iter_packages(source, meta, [e for e in meta.packages if e.name not in plan.reuse])
    linked: Installed = []
    for index, entry in enumerate(meta.packages):
        reporter.on_package_start(entry.name, index, len(meta.packages))
        old = plan.reuse.get(entry.name)
        if old is not None and old.files is not None:
            files = link_reused(ctx, tree, entry.record, old.files, job.run_link_scripts)
            linked.append((entry.record, files))
        else:
            got, info_tar, payload = next(fresh, (None, b"", None))
            if got is None or payload is None or got.stem != entry.stem:
                raise ArchiveError(f"{source.name}: package {entry.dist} is not where expected")
            info = read_info(info_tar, entry.dist)
            linked.append((entry.record, link_package(ctx, entry.dist, info, payload)))
            payload.drain()  # the rest, and its digest check
        reporter.on_package_complete(entry.name)
    for got, _, _ in fresh:
        raise ArchiveError(f"{source.name}: package {got.dist} is not where expected")
    if not meta.wheels or ctx.python is None:
        for _ in iter_wheels(source, []):  # a forward stream: read on to its checked end
            pass
    else:
        finish.install_wheels(
            iter_wheels(source, meta.wheels),
            len(meta.wheels),
            source.name,
            dest,
            str(job.prefix),
            ctx.python,
            reporter,
            job.wheels,
        )
    return linked


def _carry_unowned(
    job: UpdateJob, unowned: list[str], tree: OldTree, dest: Destination
) -> tuple[list[str], list[str]]:
    """Take the files no package owns into the new environment, where it has room for
    them (``keep_unowned``): the kept ones and the dropped ones."""
    kept: list[str] = []
    dropped: list[str] = []
    for name in unowned:
        what = f"{job.prefix}, a file no package owns"
        try:
            rel = safe_relpath(name, what)  # a name the path check refuses is dropped
            if not job.keep_unowned or _taken(dest, rel):
                dropped.append(name)
                continue
            if os.path.islink(os.path.join(tree.root, rel)):
                dest.symlink(rel, tree.readlink(rel, what), what)
            else:
                parent, _, base = rel.rpartition("/")
                dest.link_from(rel, tree.dir_fd(parent, what), base, job.run_link_scripts, what)
        except PortpackError:
            dropped.append(name)
            continue
        kept.append(name)
    return kept, dropped


def _taken(dest: Destination, rel: RelPath) -> bool:
    """Whether the new environment has ``rel``, or a file or symlink where a directory
    on its way would go."""
    parts = rel.split("/")
    for depth in range(1, len(parts)):
        ancestor = safe_relpath("/".join(parts[:depth]), "an unowned file")
        if not dest.is_dir(ancestor) and os.path.lexists(os.path.join(dest.root, ancestor)):
            return True
    return os.path.lexists(os.path.join(dest.root, rel))
