"""The one byte formatter (layer 0): sizes and rates in IEC units, as every message shows them."""

from __future__ import annotations

_UNITS = ("KiB", "MiB", "GiB", "TiB", "PiB")


def human_bytes(n: float) -> str:
    """``1536`` -> ``"1.5 KiB"``; below 1 KiB whole bytes, ``"512 B"``; at most PiB.

    Takes a float too, for rates (``"1.5 MiB"`` then ``"/s"``).
    """
    if abs(n) < 1024:
        return f"{n:.0f} B"
    value = float(n)
    for unit in _UNITS:
        value /= 1024
        if abs(value) < 1024 or unit == _UNITS[-1]:
            break
    return f"{value:.1f} {unit}"
