"""Check an unpacked environment: run it with the environment's own python.

    /app/env/bin/python test_env.py

requests, httpx and their dependencies must import from the environment (not from
a python that happens to be installed on the target), work without a network, and
the packages' data files (certifi's CA bundle) must be in place. Prints what it
checked and exits non-zero on any failure.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

MODULES = ("requests", "httpx", "urllib3", "idna", "certifi", "charset_normalizer",
           "httpcore", "h11", "anyio")  # fmt: skip


def main() -> int:
    failures: list[str] = []
    prefix = Path(sys.prefix).resolve()
    for name in MODULES:
        try:
            module = importlib.import_module(name)
        except ImportError as exc:
            failures.append(f"cannot import {name}: {exc}")
            continue
        where = Path(module.__file__ or "").resolve()
        version = getattr(module, "__version__", "")
        inside = prefix in where.parents
        print(f"{name:<19}{version:<12}{where.relative_to(prefix) if inside else where}")
        if not inside:
            failures.append(f"{name} comes from {where}, outside the environment {prefix}")

    if not failures:
        import certifi
        import requests

        bundle = Path(certifi.where())
        if not (bundle.is_file() and b"BEGIN CERTIFICATE" in bundle.read_bytes()):
            failures.append(f"certifi's CA bundle {bundle} is missing or empty")
        # IDNA host names go through idna; query strings through urllib3.
        prepared = requests.Request("GET", "http://bücher.example/a b", params={"q": "1"}).prepare()
        if prepared.url != "http://xn--bcher-kva.example/a%20b?q=1":
            failures.append(f"requests prepared {prepared.url!r}")

        import app  # the example application, next to this file

        print()
        if app.main() != 0:
            failures.append("app.py failed")

    print()
    for failure in failures:
        print(f"FAIL: {failure}")
    print("environment OK" if not failures else f"{len(failures)} check(s) failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.exit(main())
