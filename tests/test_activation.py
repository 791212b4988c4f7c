"""Activation scripts for bash, zsh, fish, xonsh and nushell, run in the real shells.

bash, zsh and fish come from Debian (dev/test installs them), xonsh from PyPI (a test
dependency); nushell is not packaged for this machine, so its script is checked as text.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

import portpack
from portpack.errors import UsageError
from portpack.install.activation import SHELLS, activation_script, script_name, source_command

PORTPACK = [sys.executable, "-m", "portpack"]
XONSH = str(Path(sys.executable).with_name("xonsh"))
#: A prefix that needs quoting in every shell.
AWKWARD = "env with 'quotes', \"double\", $dollar and \\backslash"


def fake_prefix(root: Path) -> Path:
    """An environment with env_vars.d, conda-meta/state and activate.d for every shell."""
    prefix = root / AWKWARD
    (prefix / "bin").mkdir(parents=True)
    (prefix / "conda-meta").mkdir()
    (prefix / "conda-meta" / "state").write_text(json.dumps({"env_vars": {"FROM_STATE": "s 1"}}))
    env_vars = prefix / "etc" / "conda" / "env_vars.d"
    env_vars.mkdir(parents=True)
    (env_vars / "pkg.json").write_text(json.dumps({"FROM_JSON": 'it\'s "here"'}))
    activate_d = prefix / "etc" / "conda" / "activate.d"
    activate_d.mkdir()
    (activate_d / "a.sh").write_text("export RAN_SH=posix\n")
    (activate_d / "b.fish").write_text("set -gx RAN_FISH fish\n")
    (activate_d / "c.xsh").write_text("$RAN_XSH = 'xonsh'\n")
    (activate_d / "d.nu").write_text("$env.RAN_NU = 'nu'\n")
    return prefix


def write_script(prefix: Path, shell: str) -> Path:
    script = prefix.parent / script_name(shell)
    script.write_text(activation_script(str(prefix), shell))
    return script


def run_shell(argv: list[str]) -> list[str]:
    proc = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.splitlines()


POSIX_PROBE = (
    'printf "%s\\n" "${PATH%%:*}" "$CONDA_PREFIX" "$CONDA_SHLVL" "$FROM_JSON" '
    '"$FROM_STATE" "$RAN_SH"'
)


@pytest.mark.parametrize("shell", ["bash", "zsh"])
def test_posix_script_activates_in_bash_and_zsh(shell: str, tmp_path: Path) -> None:
    prefix = fake_prefix(tmp_path)
    script = write_script(prefix, shell)
    assert script.name == "activate.sh"
    out = run_shell([shell, "-c", f". {shlex.quote(str(script))} && {POSIX_PROBE}"])
    assert out == [f"{prefix}/bin", str(prefix), "1", 'it\'s "here"', "s 1", "posix"]


def test_posix_script_survives_zsh_without_activate_d(tmp_path: Path) -> None:
    # zsh aborts a script on a glob that matches nothing: the scripts are listed instead.
    prefix = tmp_path / "plain"
    (prefix / "bin").mkdir(parents=True)
    script = write_script(prefix, "zsh")
    out = run_shell(["zsh", "-c", f". {script} && echo done=$CONDA_PREFIX"])
    assert out == [f"done={prefix}"]


def test_fish_script_activates(tmp_path: Path) -> None:
    prefix = fake_prefix(tmp_path)
    script = write_script(prefix, "fish")
    assert script.name == "activate.fish"
    probe = (
        "printf '%s\\n' $PATH[1] $CONDA_PREFIX $CONDA_SHLVL $FROM_JSON $FROM_STATE "
        "$RAN_FISH (set -q RAN_SH; and echo sh-ran; or echo sh-skipped)"
    )
    out = run_shell(["fish", "--no-config", "-c", f"source {_fish_arg(script)}; {probe}"])
    assert out == [
        f"{prefix}/bin",
        str(prefix),
        "1",
        'it\'s "here"',
        "s 1",
        "fish",
        "sh-skipped",
    ]


def _fish_arg(path: Path) -> str:
    return "'" + str(path).replace("\\", "\\\\").replace("'", "\\'") + "'"


def test_xonsh_script_activates(tmp_path: Path) -> None:
    prefix = fake_prefix(tmp_path)
    script = write_script(prefix, "xonsh")
    assert script.name == "activate.xsh"
    code = (
        f"source {str(script)!r}\n"
        "print($PATH[0]); print($CONDA_PREFIX); print($FROM_JSON); print($FROM_STATE)\n"
        "print($RAN_XSH); print($RAN_SH)\n"
    )
    out = run_shell([XONSH, "--no-rc", "-c", code])
    assert out == [f"{prefix}/bin", str(prefix), 'it\'s "here"', "s 1", "xonsh", "posix"]


def test_nushell_script_quotes_and_sources_only_nu_scripts(tmp_path: Path) -> None:
    prefix = fake_prefix(tmp_path)
    script = write_script(prefix, "nushell")
    assert script.name == "activate.nu"
    text = script.read_text()
    escaped = str(prefix).replace("\\", "\\\\").replace('"', '\\"')
    assert f'$env.PATH = ($env.PATH | prepend "{escaped}/bin")' in text
    assert f'$env.CONDA_PREFIX = "{escaped}"' in text
    assert '$env.FROM_JSON = "it\'s \\"here\\""' in text
    sources = [line for line in text.splitlines() if line.startswith("source-env")]
    assert sources == [f'source-env "{escaped}/etc/conda/activate.d/d.nu"']


def test_unknown_shell_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="tcsh"):
        activation_script(str(tmp_path), "tcsh")
    assert set(SHELLS) == {"bash", "zsh", "fish", "xonsh", "nu"}
    assert [source_command(s) for s in ("bash", "fish")] == [".", "source"]


@pytest.fixture(scope="module")
def hello_archive(fixture_channel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("act")
    lock = portpack.lock(
        ["hello-c", "actpkg"],
        channels=[str(fixture_channel)],
        platforms=["linux-64"],
        output=work / "l.lock",
    )
    portpack.pack(lockfile=lock, output=work / "env.tar", cache_dir=work / "cache")
    return work / "env.tar"


def test_unpack_shell_fish_writes_a_working_activate_fish(
    hello_archive: Path, tmp_path: Path
) -> None:
    proc = subprocess.run(
        [*PORTPACK, "unpack", hello_archive, "-o", tmp_path, "--shell", "fish"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    script = tmp_path / "activate.fish"
    assert f"Activate it with: source {script}" in proc.stdout
    assert not (tmp_path / "activate.sh").exists()
    out = run_shell(["fish", "--no-config", "-c", f"source {script}; hello; echo $ACTPKG_VAR"])
    assert out == [f"prefix={tmp_path / 'env'}", "yes"]


def test_unpack_default_shell_is_bash(hello_archive: Path, tmp_path: Path) -> None:
    result = portpack.unpack(hello_archive, tmp_path)
    assert result.activation_script == tmp_path / "activate.sh"
    out = run_shell(["bash", "-c", f". {result.activation_script} && hello && echo $ACTPKG_ACTIVE"])
    assert out == [f"prefix={result.prefix}", "1"]


def test_unpack_rejects_an_unknown_shell_before_writing(
    hello_archive: Path, tmp_path: Path
) -> None:
    proc = subprocess.run(
        [*PORTPACK, "unpack", hello_archive, "-o", tmp_path / "o", "--shell", "tcsh"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2 and "tcsh" in proc.stderr
    assert not (tmp_path / "o").exists()
