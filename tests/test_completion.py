"""``portpack completion --shell bash|zsh|fish``: the scripts complete in the real shells."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

PORTPACK = [sys.executable, "-m", "portpack"]
#: The ``portpack`` command the completion scripts call back (the venv's console script).
ENV = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}


def script(shell: str, tmp_path: Path) -> Path:
    out = subprocess.run(
        [*PORTPACK, "completion", "--shell", shell], capture_output=True, text=True, check=True
    )
    path = tmp_path / f"portpack.{shell}"
    path.write_text(out.stdout)
    return path


def bash_complete(completion: Path, *words: str) -> list[str]:
    """Run bash's completion function for ``portpack WORDS...`` (the last word is completed)."""
    words_list = " ".join(f"'{w}'" for w in ("portpack", *words))
    code = (
        f"source '{completion}'\n"
        f"COMP_WORDS=({words_list}); COMP_CWORD={len(words)}\n"
        "_portpack_completion portpack\n"
        'printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    proc = subprocess.run(
        ["bash", "--norc", "-c", code], capture_output=True, text=True, env=ENV, check=False
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.split()


def test_bash_completes_commands_options_and_choices(tmp_path: Path) -> None:
    completion = script("bash", tmp_path)
    assert bash_complete(completion, "ins") == ["inspect"]
    assert set(bash_complete(completion, "")) >= {
        "lock",
        "pack",
        "unpack",
        "inspect",
        "verify",
        "completion",
    }
    assert bash_complete(completion, "pack", "--for") == ["--format"]
    assert bash_complete(completion, "pack", "--format", "") == ["portpack", "pixi-pack"]
    assert bash_complete(completion, "completion", "--shell", "") == ["bash", "zsh", "fish"]


def test_fish_completes_commands_and_choices(tmp_path: Path) -> None:
    completion = script("fish", tmp_path)

    def complete(line: str) -> list[str]:
        proc = subprocess.run(
            ["fish", "--no-config", "-c", f"source '{completion}'; complete -C '{line}'"],
            capture_output=True,
            text=True,
            env=ENV,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr
        return [line.split("\t")[0] for line in proc.stdout.splitlines()]

    assert complete("portpack ins") == ["inspect"]
    assert sorted(complete("portpack pack --format ")) == ["pixi-pack", "portpack"]


def test_zsh_script_loads_and_defines_the_completer(tmp_path: Path) -> None:
    completion = script("zsh", tmp_path)
    code = (
        f"autoload -Uz compinit && compinit -u && source '{completion}'"
        " && whence -w _portpack_completion"
    )
    proc = subprocess.run(
        ["zsh", "-f", "-c", code], capture_output=True, text=True, env=ENV, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "_portpack_completion: function"
    assert "compdef _portpack_completion portpack" in completion.read_text()


@pytest.mark.parametrize("shell", ["powershell", ""])
def test_unknown_shell_is_a_usage_error(shell: str) -> None:
    proc = subprocess.run(
        [*PORTPACK, "completion", "--shell", shell], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 2 and "--shell" in proc.stderr
