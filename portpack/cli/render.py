"""Text rendering of the library's reports (the CLI prints; the library returns data)."""

from __future__ import annotations

from portpack.archive.summary import ArchiveSummary
from portpack.units import human_bytes


def human_size(n: int | None) -> str:
    """``1536`` -> ``1.5 KiB`` (:func:`portpack.units.human_bytes`); unknown: ``?``."""
    return "?" if n is None else human_bytes(n)


def summary_text(summary: ArchiveSummary) -> str:
    """The human-readable report of ``portpack inspect``."""
    packed_by = (
        f"portpack {summary.portpack_version}"
        if summary.portpack_version
        else f"pixi-pack {summary.pixi_pack_version or '(version unknown)'}"
    )
    size = f", {human_size(summary.archive_size)}" if summary.archive_size is not None else ""
    glibc = f">={summary.glibc}" if summary.glibc else "any (no __glibc requirement)"
    lines = [
        f"Archive:      {summary.archive} ({summary.format} format {summary.format_version}{size})",
        f"Packed by:    {packed_by}",
        f"Platform:     {summary.platform}",
        f"Python:       {summary.python_version or 'none'}",
        f"Needs glibc:  {glibc}",
        f"Packages:     {len(summary.packages)}, {human_size(summary.download_size)} to "
        f"download, {human_size(summary.installed_size)} installed",
    ]
    if summary.wheels:
        lines.append(f"PyPI wheels:  {', '.join(summary.wheels)}")
    rows = [("NAME", "VERSION", "BUILD", "SIZE")] + [
        (p.name, p.version, p.build, human_size(p.size)) for p in summary.packages
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines.append("")
    for row in rows:
        cells = [row[i].ljust(widths[i]) for i in range(3)]
        lines.append("  " + "  ".join([*cells, row[3].rjust(9)]).rstrip())
    return "\n".join(lines)


__all__ = ["human_size", "summary_text"]
