"""The command-line contract: names, defaults, exit statuses and messages."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import portpack
from portpack.errors import UsageError

PORTPACK = [sys.executable, "-m", "portpack"]


def cli(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*PORTPACK, *map(str, args)], capture_output=True, text=True, cwd=cwd, check=False
    )


def test_version() -> None:
    out = cli("--version")
    assert out.returncode == 0 and portpack.__version__ in out.stdout
    assert portpack.__version__ in cli("unpack", "--version").stdout


def test_help_has_examples() -> None:
    for command in ("lock", "pack", "unpack"):
        out = cli(command, "--help")
        assert out.returncode == 0, out.stderr
        assert "xample" in out.stdout, command


def test_lock_pack_unpack_with_defaults(fixture_channel: Path, tmp_path: Path) -> None:
    out = cli("lock", "-c", fixture_channel, "hello-c", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "portpack.lock").is_file()
    out = cli("pack", "--lockfile", "portpack.lock", "--cache-dir", tmp_path / "c", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "environment.tar").is_file()
    out = cli("unpack", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "env" / "bin" / "hello").is_file()
    assert (tmp_path / "activate.sh").is_file()
    out = cli("unpack", "environment.tar", "-o", "there", "-e", "myenv", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "there" / "myenv" / "bin" / "hello").is_file()


def test_pack_to_stdout(fixture_channel: Path, tmp_path: Path) -> None:
    cli("lock", "-c", fixture_channel, "hello-c", "-o", tmp_path / "l.lock")
    out = subprocess.run(
        [*PORTPACK, "pack", "-l", tmp_path / "l.lock", "-o", "-", "--cache-dir", tmp_path / "c"],
        capture_output=True,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    (tmp_path / "env.tar").write_bytes(out.stdout)
    assert cli("unpack", tmp_path / "env.tar", "-o", tmp_path / "x").returncode == 0


def test_user_errors_are_one_paragraph_without_traceback(tmp_path: Path) -> None:
    for args in (
        ("unpack", tmp_path / "missing.tar"),
        ("pack", "-l", tmp_path / "missing.lock"),
        ("lock", "-c", tmp_path / "no-such-channel", "x"),
    ):
        out = cli(*args, cwd=tmp_path)
        assert out.returncode != 0, args
        assert "Traceback" not in out.stderr, out.stderr
        assert out.stderr.startswith("portpack: error: "), out.stderr


def test_garbage_archive_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "bad.tar").write_bytes(b"this is not an archive" * 100)
    out = cli("unpack", tmp_path / "bad.tar", "-o", tmp_path / "o")
    assert out.returncode == 1
    assert "bad.tar" in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "o" / "env").exists()


def test_unpack_imports_only_what_it_needs(fixture_channel: Path, tmp_path: Path) -> None:
    """unpack's start-up is part of its time: no solver, no HTTP, no pixi-pack reader.

    (shutil is not in the list: argparse's help formatter imports it.)
    """
    cli("lock", "-c", fixture_channel, "hello-c", "-o", tmp_path / "l.lock")
    cli("pack", "-l", tmp_path / "l.lock", "-o", tmp_path / "env.tar", "--cache-dir", tmp_path)
    avoided = (
        "click",
        "rattler",
        "urllib3",
        "yaml",
        "tarfile",
        "zipfile",
        "tempfile",
        "subprocess",
        "portpack.unpacker.pixipack",
        "portpack.net.fetch",
    )
    code = (
        "import sys\n"
        "from portpack.__main__ import main\n"
        f"main(['unpack', {str(tmp_path / 'env.tar')!r}, '-o', {str(tmp_path / 'o')!r}, '-q'])\n"
        f"print('LOADED=' + ','.join(m for m in {avoided!r} if m in sys.modules))\n"
    )
    # -S: the editable install's path hook would import pathlib's dependencies itself.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    out = subprocess.run(
        [sys.executable, "-S", "-c", code], capture_output=True, text=True, env=env, check=True
    )
    assert (tmp_path / "o" / "env" / "bin" / "hello").is_file()
    assert out.stdout.strip().splitlines()[-1] == "LOADED="


def test_unpack_main_gives_a_caller_its_signal_handlers_back(
    fixture_channel: Path, tmp_path: Path
) -> None:
    """main() handles SIGINT/SIGTERM while it runs; a program calling it in-process gets
    its own handlers back (a child it starts later would otherwise inherit an ignored
    SIGINT from an interrupted clean-up)."""
    cli("lock", "-c", fixture_channel, "hello-c", "-o", tmp_path / "l.lock")
    cli("pack", "-l", tmp_path / "l.lock", "-o", tmp_path / "env.tar", "--cache-dir", tmp_path)
    code = (
        "import signal\n"
        "from portpack.cli.unpack import main\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        f"status = main([{str(tmp_path / 'env.tar')!r}, '-o', {str(tmp_path / 'o')!r}, '-q'])\n"
        "print(status, signal.getsignal(signal.SIGINT) is signal.default_int_handler,"
        " signal.getsignal(signal.SIGTERM) is signal.SIG_IGN)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["0", "True", "True"]


class _Untouchable:
    """Stands in for sys.stdin/sys.stdout: the library must not use them."""

    def __getattr__(self, name: str) -> object:
        raise AssertionError(f"the library used a standard stream ({name})")


@pytest.mark.parametrize("fmt", ["portpack", "pixi-pack"])
def test_library_unpack_takes_a_stream_and_leaves_stdin_alone(
    fixture_channel: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fmt: str
) -> None:
    """``-`` is the command line's: the library reads the stream it is given, and the
    path ``-`` is a file of that name."""
    cli("lock", "-c", fixture_channel, "hello-c", "-o", tmp_path / "l.lock")
    archive = tmp_path / "env.tar"
    cli("pack", "-l", tmp_path / "l.lock", "-o", archive, "--format", fmt, "--cache-dir", tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "stdin", _Untouchable())
    monkeypatch.setattr(sys, "stdout", _Untouchable())
    with open(archive, "rb") as stream:
        result = portpack.unpack(stream, tmp_path / "o")
    assert (result.prefix / "bin" / "hello").is_file()
    records = sorted(p.name[: -len(".json")] for p in (result.prefix / "conda-meta").glob("*.json"))
    assert sorted(result.packages) == records
    with pytest.raises(UsageError, match="cannot open archive -: No such file"):
        portpack.unpack("-", tmp_path / "new")
    assert not (tmp_path / "new").exists()


def test_unpack_reads_standard_input_for_dash(fixture_channel: Path, tmp_path: Path) -> None:
    cli("lock", "-c", fixture_channel, "hello-c", "-o", tmp_path / "l.lock")
    cli("pack", "-l", tmp_path / "l.lock", "-o", tmp_path / "env.tar", "--cache-dir", tmp_path)
    with open(tmp_path / "env.tar", "rb") as stdin:
        out = subprocess.run(
            [*PORTPACK, "unpack", "-", "-o", tmp_path / "o"],
            stdin=stdin,
            capture_output=True,
            text=True,
        )
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "o" / "env" / "bin" / "hello").is_file()
    assert "Unpacked 1 package into" in out.stdout
    # A broken archive on standard input is named as such.
    out = subprocess.run(
        [*PORTPACK, "unpack", "-", "-o", tmp_path / "p"],
        input="garbage" * 200,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 1
    assert "<stdin>" in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "p").exists()


def test_unreachable_channel_is_a_fetch_error_not_a_solve_error(tmp_path: Path) -> None:
    out = cli("lock", "-c", "http://127.0.0.1:9/nothing-here", "python", cwd=tmp_path)
    assert out.returncode == 1
    assert "cannot fetch the package index of http://127.0.0.1:9/nothing-here" in out.stderr
    assert "cannot solve" not in out.stderr


def _help(*command: str) -> str:
    out = subprocess.run(
        [*PORTPACK, *command, "--help"],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "100"},
        check=False,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def _help_column(text: str) -> int:
    line = next(x for x in text.splitlines() if x.startswith("  -h, --help "))
    return line.index("Show this message and exit.")


def test_unpack_help_has_the_layout_of_the_click_commands() -> None:
    unpack, pack = _help("unpack"), _help("pack")
    for text, command in ((unpack, "unpack"), (pack, "pack")):
        assert text.startswith(f"Usage: portpack {command} [OPTIONS] ["), text
        sections = [x for x in text.splitlines() if x and not x.startswith(" ")]
        assert sections == [sections[0], "Options:"], sections  # Usage, Options, no others
        assert "\n  Examples:\n    portpack " in text
        options = text.split("\nOptions:\n")[1].split("\n\n")[0].splitlines()
        assert all(x.startswith("  -") or x.startswith(" " * 34) for x in options), options
        assert all(len(x) <= 98 for x in options)
    assert _help_column(unpack) == _help_column(pack) == 34
    # The description says what it takes, pixi-pack archives and folders included.
    description = " ".join(unpack.split("\n\n")[1].split())
    assert "portpack or pixi-pack archive" in description and "--directory-only" in description
    assert "a portpack archive" not in unpack


def test_every_option_is_in_the_help() -> None:
    from portpack.cli.commands import cli as group
    from portpack.cli.unpack import build_parser

    text = _help("unpack")
    for action in build_parser()._actions:
        for option in action.option_strings:
            assert f" {option}" in text, option
    for name, command in group.commands.items():
        if name == "unpack":
            continue
        text = _help(name)
        for param in command.params:
            for option in [*param.opts, *param.secondary_opts]:
                if option.startswith("-"):
                    assert option in text, (name, option)


def test_main_help_shows_whole_descriptions_and_examples() -> None:
    from portpack.cli.commands import cli as group

    text = _help()
    flat = " ".join(text.split())
    for name, command in group.commands.items():
        first = " ".join((command.help or "").split("\n\n")[0].split())
        assert f"{name} {first}" in flat.replace("- ", "-"), name
    assert "..." not in text.split("Commands:")[1]
    assert "\n  Examples:\n    portpack " in text


def test_unpack_help_does_not_import_click() -> None:
    code = (
        "import sys\n"
        "from portpack.__main__ import main\n"
        "try:\n    main(['unpack', '--help'])\nexcept SystemExit:\n    pass\n"
        "print('CLICK=' + str('click' in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "CLICK=False"
    assert "Usage: portpack unpack" in out.stdout


def test_usage_errors_exit_2_for_every_command(tmp_path: Path) -> None:
    """A file named on the command line that does not exist is a usage error everywhere."""
    missing = tmp_path / "missing"
    for args in (
        ("unpack", missing),
        ("inspect", missing),
        ("pack", "--lockfile", missing),
        ("pack", "--manifest", missing),
        ("lock", "--manifest", missing, "x"),
        ("pack", "--lockfile", missing, "--config", missing),
        ("lock", "x", "--auth-file", missing),
        ("lock", "x", "--ca-bundle", missing),
    ):
        out = cli(*args, cwd=tmp_path)
        assert out.returncode == 2, (args, out.stderr)
        assert out.stderr.startswith("portpack: error: "), out.stderr
        assert str(missing) in out.stderr and "Traceback" not in out.stderr
    assert list(tmp_path.iterdir()) == []


def test_counts_are_singular_for_one(tmp_path: Path) -> None:
    from hostile import Member, RawPackage, make_archive

    archive = make_archive(tmp_path / "a", [RawPackage("solo", [Member("share/solo", b"1")])])
    out = cli("unpack", archive, "-o", tmp_path / "o")
    assert out.returncode == 0, out.stderr
    assert f"Unpacked 1 package into {tmp_path / 'o' / 'env'}" in out.stdout
