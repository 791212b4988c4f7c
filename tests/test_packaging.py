"""``python -m build`` makes a wheel and an sdist that install and run.

Both are built from this checkout (the wheel from the sdist, as ``python -m build``
does, so a file missing from the sdist breaks the wheel too). Each is installed into
a fresh venv (the sdist as pip installs one: through a wheel built from its contents
alone), and the installed ``portpack`` reports its version, packs an environment
from the fixture channel and unpacks it, and the unpacked program runs. Offline:
``--no-isolation`` builds with the test venv's setuptools, and the fresh venvs see
the test venv's dependencies through a ``.pth`` line (portpack itself comes from the
installed artifact, which the test checks).
"""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import tarfile
import zipfile
from pathlib import Path

import pytest

import portpack
from support.extract import extract_all

ROOT = Path(__file__).resolve().parents[1]
#: Files the installed package needs besides its modules.
PACKAGE_DATA = ("portpack/sfx_header.sh",)


def run(*argv: str | Path, cwd: Path, env: dict[str, str] | None = None) -> str:
    """Run *argv* in *cwd* (never the checkout: ``python -c`` would import from it)."""
    proc = subprocess.run(
        [str(a) for a in argv], capture_output=True, text=True, cwd=cwd, env=env, check=False
    )
    assert proc.returncode == 0, f"{argv}: {proc.stdout}\n{proc.stderr}"
    return proc.stdout


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    run(sys.executable, "-m", "build", "--no-isolation", "--outdir", out, ROOT, cwd=out)
    return out


def package_data() -> list[str]:
    return [name for name in PACKAGE_DATA if (ROOT / name).exists()]


def test_sdist_holds_the_sources_and_data(dist: Path) -> None:
    (sdist,) = dist.glob("portpack-*.tar.gz")
    with tarfile.open(sdist) as tar:
        names = {name.split("/", 1)[1] for name in tar.getnames() if "/" in name}
    modules = {p.relative_to(ROOT).as_posix() for p in (ROOT / "portpack").glob("*.py")}
    assert modules <= names, sorted(modules - names)
    assert {"pyproject.toml", "README.md", *package_data()} <= names


def test_wheel_holds_the_modules_and_data(dist: Path) -> None:
    (wheel,) = dist.glob("portpack-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
    modules = {p.relative_to(ROOT).as_posix() for p in (ROOT / "portpack").glob("*.py")}
    assert modules <= names, sorted(modules - names)
    assert set(package_data()) <= names


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["wheel", "sdist"])
def test_artifact_installs_and_runs(
    kind: str, dist: Path, fixture_channel: Path, tmp_path: Path
) -> None:
    if kind == "wheel":
        (artifact,) = dist.glob("portpack-*.whl")
    else:  # what pip does with an sdist: build a wheel from its contents alone
        (sdist,) = dist.glob("portpack-*.tar.gz")
        with tarfile.open(sdist) as tar:
            extract_all(tar, tmp_path / "src", "data")
        (src,) = (tmp_path / "src").iterdir()
        out = tmp_path / "from-sdist"
        run(
            sys.executable,
            "-m",
            "build",
            "--wheel",
            "--no-isolation",
            "-o",
            out,
            src,
            cwd=out.parent,
        )
        (artifact,) = out.glob("portpack-*.whl")
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=tmp_path)
    python = venv / "bin" / "python"
    run(
        sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-deps",
        "--no-index", artifact, cwd=tmp_path,
    )  # fmt: skip
    # The dependencies (not portpack) from the test venv, after the venv's own paths.
    purelib = "import sysconfig; print(sysconfig.get_path('purelib'))"
    site = Path(run(python, "-c", purelib, cwd=tmp_path).strip())
    (site / "test-deps.pth").write_text(sysconfig.get_path("purelib") + "\n")

    where = run(python, "-c", "import portpack; print(portpack.__file__)", cwd=tmp_path).strip()
    assert Path(where).is_relative_to(venv), where
    portpack_cmd = venv / "bin" / "portpack"
    assert run(portpack_cmd, "--version", cwd=tmp_path).split()[-1] == portpack.__version__
    header = run(
        python, "-c",
        "from importlib import resources; "
        "print(resources.files('portpack').joinpath('sfx_header.sh').read_text(), end='')",
        cwd=tmp_path,
    )  # fmt: skip
    assert header == (ROOT / "portpack" / "sfx_header.sh").read_text()

    lock, archive, app = tmp_path / "hello.lock", tmp_path / "env.tar", tmp_path / "app"
    env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": str(tmp_path)}
    for argv in (
        ["lock", "-c", fixture_channel, "-p", "linux-64", "hello-c", "-o", lock],
        ["pack", "-l", lock, "-o", archive, "--cache-dir", tmp_path / "cache"],
        ["unpack", archive, "-o", app, "-q"],
    ):
        run(portpack_cmd, *argv, cwd=tmp_path, env=env)
    out = run(tmp_path / "app" / "env" / "bin" / "hello", cwd=tmp_path)
    assert out.strip() == f"prefix={tmp_path / 'app' / 'env'}"
