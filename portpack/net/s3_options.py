"""``[s3-options.<bucket>]`` of the config file (pixi's keys); used by :mod:`portpack.net.s3`.

Apart from :mod:`portpack.net.s3` so that :mod:`portpack.net.config` reads them without
importing the S3 client side.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from portpack.errors import UsageError

#: ``[s3-options.<bucket>]`` keys (pixi's names).
_KEYS = {"endpoint-url": str, "region": str, "force-path-style": bool}


@dataclass(frozen=True)
class S3Options:
    """One bucket's ``[s3-options.<bucket>]``."""

    endpoint_url: str | None = None
    region: str | None = None
    force_path_style: bool = False


def parse_options(path: Path, doc: Mapping[str, Any]) -> dict[str, S3Options]:
    """The ``[s3-options]`` table of config file ``path`` (parsed TOML ``doc``)."""
    table = doc.get("s3-options", {})
    if not isinstance(table, dict):
        raise UsageError(f"config file {path}: [s3-options] must be a table of buckets")
    found = {}
    for bucket, values in table.items():
        where = f"config file {path}: [s3-options.{bucket}]"
        if not isinstance(values, dict):
            raise UsageError(f"{where} must be a table")
        unknown = sorted(set(values) - set(_KEYS))
        if unknown:
            raise UsageError(
                f"{where}: unknown key(s) {', '.join(unknown)} (known: {', '.join(_KEYS)})"
            )
        for key, kind in _KEYS.items():
            if key in values and not isinstance(values[key], kind):
                raise UsageError(f"{where}: {key} must be a {kind.__name__}")
        endpoint = values.get("endpoint-url")
        if endpoint is not None and urllib.parse.urlsplit(endpoint).scheme not in ("http", "https"):
            raise UsageError(f"{where}: endpoint-url must be an http(s) URL, got {endpoint!r}")
        found[str(bucket)] = S3Options(
            endpoint, values.get("region"), bool(values.get("force-path-style", False))
        )
    return found
