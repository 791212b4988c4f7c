"""``pack``'s options and outputs: checked before anything is read, written to a path
(atomically), a folder (atomically) or a binary stream, never to ``sys.stdout``."""

from __future__ import annotations

import inspect
import io
import os
import sys
from pathlib import Path
from typing import Any

import pytest

import portpack
from portpack.conda.record import PackageRecord
from portpack.packer.options import PackOptions
from portpack.packer.plan import plan
from portpack.progress import Reporter
from support.pkgwriter import Entry, PackageSpec, write_conda


@pytest.fixture(scope="module")
def hello_lock(fixture_channel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("lock") / "hello.lock"
    return portpack.lock(
        ["hello-c"], channels=[str(fixture_channel)], platforms=["linux-64"], output=out
    )


class _NoStdout(io.RawIOBase):
    """Stands in for ``sys.stdout`` (and its ``buffer``): the library must not use it."""

    @property
    def buffer(self) -> _NoStdout:
        return self

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        raise AssertionError(f"the library wrote to sys.stdout: {bytes(data)[:40]!r}")


def test_pack_writes_to_a_binary_stream_never_to_stdout(
    hello_lock: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stdout", _NoStdout())
    for archive_format in ("portpack", "pixi-pack"):
        stream = io.BytesIO()
        result = portpack.pack(
            lockfile=hello_lock,
            platform="linux-64",
            output=stream,
            cache_dir=tmp_path / "cache",
            archive_format=archive_format,
        )
        assert result.output == "<stream>" and result.packages == ["hello-c-1.0-hb0f4dca_0"]
        assert not stream.closed  # the caller's stream: written and flushed, not closed
        archive = tmp_path / f"{archive_format}.tar"
        archive.write_bytes(stream.getvalue())
        env = portpack.unpack(archive, tmp_path / f"out-{archive_format}").prefix
        assert (env / "bin" / "hello").is_file()
    assert sorted(os.listdir(tmp_path)) == [
        "cache",
        "out-pixi-pack",
        "out-portpack",
        "pixi-pack.tar",
        "portpack.tar",
    ]


def test_dash_is_the_command_lines_name_for_stdout(
    hello_lock: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(portpack.UsageError) as info:
        portpack.pack(lockfile=hello_lock, output="-", cache_dir=tmp_path / "cache")
    assert "'-' is the command line's name for standard output" in info.value.message
    assert info.value.hint is not None and "output=sys.stdout.buffer" in info.value.hint
    assert os.listdir(tmp_path) == []  # no file named '-', nothing fetched


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"output": io.BytesIO(), "directory_only": True}, "--directory-only writes a folder"),
        ({"directory_only": True, "create_executable": True}, "not with --create-executable"),
        ({"create_executable": True, "archive_format": "pixi-pack"}, "portpack archives only"),
        ({"archive_format": "zip"}, "unknown archive format 'zip'"),
        ({"wheel_index": "https://example.invalid/simple"}, "need --create-executable"),
        ({"no_cache": True, "cache_dir": "cache"}, "either --cache-dir or --no-cache"),
        ({"unowned": "ignore"}, "--unowned needs --prefix"),
        ({"prefix": "env"}, "either --prefix or specs/--manifest/--lockfile"),
    ],
)
def test_contradicting_options_are_refused_before_anything_is_read(
    options: dict[str, Any], message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    absent = tmp_path / "absent.lock"  # reading it would be another error
    with pytest.raises(portpack.UsageError, match=message):
        portpack.pack(lockfile=absent, **{"output": tmp_path / "env.tar", **options})
    planned = {k: v for k, v in options.items() if k not in ("output", "no_cache", "cache_dir")}
    if planned and "directory_only" not in planned:
        with pytest.raises(portpack.UsageError, match=message):
            plan(lockfile=absent, **planned)
    assert os.listdir(tmp_path) == []


def test_every_keyword_of_pack_and_plan_is_an_option() -> None:
    for func in (portpack.pack, plan):
        params = inspect.signature(func).parameters
        defaults = {name: p.default for name, p in params.items() if name != "reporter"}
        PackOptions.from_keywords(defaults)  # raises TypeError for any it does not take
        changed = {**defaults, "environment": "other", "inject": ["a.whl"]}
        options = PackOptions.from_keywords(changed)
        assert options.inputs.environment == "other"
        assert options.inputs.wheel_files == ["a.whl"] and options.inputs.conda_files == []
    with pytest.raises(TypeError, match="unknown pack options: colour"):
        PackOptions.from_keywords({"colour": "blue"})


class _FailsWhileWriting(Reporter):
    def on_transfer_progress(self, nbytes: int, packages: int = 0) -> None:
        raise RuntimeError("the disk went away")


@pytest.mark.parametrize("archive_format", ["portpack", "pixi-pack"])
@pytest.mark.parametrize("directory_only", [False, True])
def test_a_failed_write_leaves_nothing_behind(
    hello_lock: Path, tmp_path: Path, archive_format: str, directory_only: bool
) -> None:
    target = tmp_path / "out" / "deeper" / "env"
    with pytest.raises(RuntimeError, match="the disk went away"):
        portpack.pack(
            lockfile=hello_lock,
            platform="linux-64",
            output=target,
            cache_dir=tmp_path / "cache",
            archive_format=archive_format,
            directory_only=directory_only,
            reporter=_FailsWhileWriting(),
        )
    assert os.listdir(tmp_path) == ["cache"]  # no output, no temporary, no parent made


@pytest.mark.parametrize("archive_format", ["portpack", "pixi-pack"])
def test_directory_output_takes_an_empty_folder_and_refuses_a_full_one(
    hello_lock: Path, tmp_path: Path, archive_format: str
) -> None:
    folder = tmp_path / "env"
    folder.mkdir()
    options: dict[str, Any] = {
        "lockfile": hello_lock,
        "platform": "linux-64",
        "output": folder,
        "cache_dir": tmp_path / "cache",
        "archive_format": archive_format,
        "directory_only": True,
    }
    portpack.pack(**options)
    assert folder.is_dir() and os.listdir(folder)
    assert (folder.stat().st_mode & 0o777) == 0o755 & ~_umask()
    env = portpack.unpack(folder, tmp_path / "out").prefix
    assert (env / "bin" / "hello").is_file()
    with pytest.raises(portpack.UsageError, match="already exists and is not empty"):
        portpack.pack(**{**options, "cache_dir": tmp_path / "unused"})  # before any fetch
    (tmp_path / "file").write_text("x")
    with pytest.raises(portpack.UsageError, match="exists and is not a directory"):
        portpack.pack(**{**options, "output": tmp_path / "file"})
    assert sorted(os.listdir(tmp_path)) == ["cache", "env", "file", "out"]


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def test_injected_packages_are_typed_records_and_hostile_fields_are_refused(
    hello_lock: Path, tmp_path: Path
) -> None:
    from portpack.packer.inject import local_records

    good = write_conda(
        tmp_path / "good",
        PackageSpec(name="plugin", version="2.0", files={"share/p": Entry.file("p\n")}),
    )
    (record,) = local_records([good], "linux-64")
    assert isinstance(record, PackageRecord)
    assert (record.dist, record.fn, record.url) == ("plugin-2.0-0", good.name, good.as_uri())
    assert record.sha256 is not None and record.size == good.stat().st_size

    evil = write_conda(
        tmp_path / "evil",
        PackageSpec(name="evil", version="1.0", extra_index={"version": "1.0/../../x"}),
    )
    with pytest.raises(portpack.UnsafeArchiveError, match=r"--inject .*evil.*'version'"):
        portpack.pack(
            lockfile=hello_lock, output=tmp_path / "env.tar", inject=[evil], platform="linux-64"
        )
    assert not (tmp_path / "env.tar").exists()
