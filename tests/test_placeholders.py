"""Tests of portpack.install.placeholders: text, binary (C-string) and shebang replacement."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from portpack.errors import PreconditionError
from portpack.install.placeholders import MAX_SHEBANG, fix_shebang, replace_binary, replace_text

PLACEHOLDER = b"/opt/placeholder_" + b"x" * 63  # 80 bytes, like a real conda-build one
SHORT_PREFIX = b"/home/u/env"


def _long_prefix(length: int = 130) -> bytes:
    """An absolute prefix of exactly ``length`` bytes, without spaces."""
    base = b"/very/long/prefix/"
    return base + b"p" * (length - len(base))


# --- text placeholders ------------------------------------------------------------------------


def test_replace_text_replaces_every_occurrence() -> None:
    data = b"a=" + PLACEHOLDER + b"/lib\nb=" + PLACEHOLDER + b"/bin:" + PLACEHOLDER + b"\n"
    out = replace_text(data, PLACEHOLDER, SHORT_PREFIX)
    assert out == b"a=/home/u/env/lib\nb=/home/u/env/bin:/home/u/env\n"
    assert PLACEHOLDER not in out


def test_replace_text_may_change_length() -> None:
    long_prefix = b"/" + b"d" * 200
    out = replace_text(b"x " + PLACEHOLDER + b" y", PLACEHOLDER, long_prefix)
    assert out == b"x " + long_prefix + b" y"


def test_replace_text_without_placeholder_is_identity() -> None:
    data = b"#!/usr/bin/env python\nprint('hi')\n"
    assert replace_text(data, PLACEHOLDER, SHORT_PREFIX) == data


def test_replace_text_fixes_a_long_python_shebang() -> None:
    prefix = _long_prefix()
    data = b"#!" + PLACEHOLDER + b"/bin/python3.12\nimport sys\n"
    out = replace_text(data, PLACEHOLDER, prefix)
    assert out == (
        b"#!/bin/sh\n'''exec' \"" + prefix + b'/bin/python3.12" "$0" "$@" #\'\'\'\nimport sys\n'
    )


# --- binary placeholders ----------------------------------------------------------------------


def test_replace_binary_pads_with_nuls_and_keeps_length() -> None:
    data = b"\x7fELF\0\0" + PLACEHOLDER + b"/lib\0tail"
    out = replace_binary(data, PLACEHOLDER, SHORT_PREFIX)
    assert len(out) == len(data)
    pad = len(PLACEHOLDER) - len(SHORT_PREFIX)
    assert out == b"\x7fELF\0\0" + SHORT_PREFIX + b"/lib" + b"\0" * pad + b"\0tail"


def test_replace_binary_replaces_every_occurrence_in_one_c_string() -> None:
    # An RPATH-like string: two placeholders separated by ':' in the same C string.
    data = b"HEAD\0" + PLACEHOLDER + b"/lib:" + PLACEHOLDER + b"/lib64\0END"
    out = replace_binary(data, PLACEHOLDER, SHORT_PREFIX)
    pad = 2 * (len(PLACEHOLDER) - len(SHORT_PREFIX))
    assert out == (
        b"HEAD\0" + SHORT_PREFIX + b"/lib:" + SHORT_PREFIX + b"/lib64" + b"\0" * pad + b"\0END"
    )
    assert len(out) == len(data)


def test_replace_binary_leaves_bytes_before_the_placeholder_alone() -> None:
    data = b"\0prefix=" + PLACEHOLDER + b"/share\0"
    out = replace_binary(data, PLACEHOLDER, SHORT_PREFIX)
    pad = len(PLACEHOLDER) - len(SHORT_PREFIX)
    assert out == b"\0prefix=" + SHORT_PREFIX + b"/share" + b"\0" * pad + b"\0"


def test_replace_binary_handles_several_c_strings() -> None:
    data = PLACEHOLDER + b"\0mid\0" + PLACEHOLDER + b"/x\0"
    out = replace_binary(data, PLACEHOLDER, SHORT_PREFIX)
    pad = b"\0" * (len(PLACEHOLDER) - len(SHORT_PREFIX))
    assert out == SHORT_PREFIX + pad + b"\0mid\0" + SHORT_PREFIX + b"/x" + pad + b"\0"


def test_replace_binary_placeholder_at_end_of_file_without_nul() -> None:
    data = b"\0\0data:" + PLACEHOLDER + b"/etc"
    out = replace_binary(data, PLACEHOLDER, SHORT_PREFIX)
    pad = b"\0" * (len(PLACEHOLDER) - len(SHORT_PREFIX))
    assert out == b"\0\0data:" + SHORT_PREFIX + b"/etc" + pad
    assert len(out) == len(data)


def test_replace_binary_prefix_of_equal_length_needs_no_padding() -> None:
    prefix = b"/" + b"e" * (len(PLACEHOLDER) - 1)
    data = b"a\0" + PLACEHOLDER + b"/bin\0b"
    assert replace_binary(data, PLACEHOLDER, prefix) == b"a\0" + prefix + b"/bin\0b"


def test_replace_binary_without_placeholder_is_identity() -> None:
    data = bytes(range(256)) * 4
    assert replace_binary(data, PLACEHOLDER, SHORT_PREFIX) == data


def test_replace_binary_prefix_longer_than_placeholder_is_refused() -> None:
    prefix = b"/" + b"l" * len(PLACEHOLDER)  # one byte too long
    with pytest.raises(PreconditionError) as info:
        replace_binary(b"x" + PLACEHOLDER + b"\0", PLACEHOLDER, prefix, what="lib/libfoo.so")
    message = str(info.value)
    assert f"({len(prefix)} bytes)" in message
    assert f"({len(PLACEHOLDER)} bytes)" in message
    assert "lib/libfoo.so" in message
    assert info.value.hint


def test_replace_binary_refuses_a_long_prefix_even_without_a_placeholder() -> None:
    # The check is about the prefix, not about whether this file holds the placeholder.
    with pytest.raises(PreconditionError):
        replace_binary(b"nothing here", b"/short", b"/much/longer/prefix")


@given(
    data=st.lists(
        st.one_of(
            st.binary(max_size=40), st.just(PLACEHOLDER), st.just(b"\0"), st.just(PLACEHOLDER[:10])
        ),
        max_size=12,
    ).map(b"".join),
    prefix=st.binary(max_size=len(PLACEHOLDER)),
)
def test_replace_binary_never_changes_the_length(data: bytes, prefix: bytes) -> None:
    out = replace_binary(data, PLACEHOLDER, prefix)
    assert len(out) == len(data)
    if PLACEHOLDER not in data:
        assert out == data


@given(
    segments=st.lists(
        st.binary(max_size=20).filter(lambda b: b"\0" not in b and b"/opt" not in b), max_size=6
    ),
    prefix=st.binary(min_size=1, max_size=len(PLACEHOLDER)).filter(lambda b: b"\0" not in b),
)
def test_replace_binary_matches_per_c_string_replacement(
    segments: list[bytes], prefix: bytes
) -> None:
    # Each C string is patched on its own and NUL-padded at its end.
    strings = [seg + PLACEHOLDER + seg for seg in segments]
    data = b"\0".join(strings)
    expected = b"\0".join(s.replace(PLACEHOLDER, prefix).ljust(len(s), b"\0") for s in strings)
    assert replace_binary(data, PLACEHOLDER, prefix) == expected


# --- shebangs --------------------------------------------------------------------------------


def test_short_shebang_is_untouched() -> None:
    data = SHORT_PREFIX + b"/bin/python3.12"
    script = b"#!" + data + b"\nprint(1)\n"
    assert fix_shebang(script, SHORT_PREFIX) == script


def test_shebang_of_exactly_the_limit_is_untouched() -> None:
    exe = b"/bin/python3.12"
    prefix = _long_prefix(MAX_SHEBANG - 2 - len(exe))
    script = b"#!" + prefix + exe + b"\nx\n"
    assert len(script.split(b"\n")[0]) == MAX_SHEBANG
    assert fix_shebang(script, prefix) == script


def test_shebang_one_over_the_limit_is_rewritten() -> None:
    exe = b"/bin/python3.12"
    prefix = _long_prefix(MAX_SHEBANG - 1 - len(exe))
    script = b"#!" + prefix + exe + b"\nx\n"
    assert len(script.split(b"\n")[0]) == MAX_SHEBANG + 1
    assert fix_shebang(script, prefix).startswith(b"#!/bin/sh\n")


@pytest.mark.parametrize("exe", [b"python", b"python3", b"python3.12"])
def test_long_python_shebang_becomes_sh_trampoline(exe: bytes) -> None:
    prefix = _long_prefix()
    script = b"#!" + prefix + b"/bin/" + exe + b"\n# -*- coding: utf-8 -*-\nimport sys\n"
    out = fix_shebang(script, prefix)
    assert out == (
        b"#!/bin/sh\n'''exec' \""
        + prefix
        + b"/bin/"
        + exe
        + b'" "$0" "$@" #\'\'\'\n# -*- coding: utf-8 -*-\nimport sys\n'
    )


def test_long_python_shebang_without_newline() -> None:
    prefix = _long_prefix()
    out = fix_shebang(b"#!" + prefix + b"/bin/python3.12", prefix)
    assert out == b"#!/bin/sh\n'''exec' \"" + prefix + b'/bin/python3.12" "$0" "$@" #\'\'\''


def test_long_non_python_shebang_uses_env_with_arguments() -> None:
    prefix = _long_prefix()
    script = b"#!" + prefix + b"/bin/perl -w -T\nprint 1;\n"
    assert fix_shebang(script, prefix) == b"#!/usr/bin/env perl -w -T\nprint 1;\n"


def test_long_non_python_shebang_uses_env_without_arguments() -> None:
    prefix = _long_prefix()
    script = b"#!" + prefix + b"/bin/bash\necho hi\n"
    assert fix_shebang(script, prefix) == b"#!/usr/bin/env bash\necho hi\n"


@pytest.mark.parametrize("exe", [b"pythonw", b"python-config", b"ipython", b"python3.12m2x"])
def test_python_lookalikes_are_not_python(exe: bytes) -> None:
    prefix = _long_prefix()
    out = fix_shebang(b"#!" + prefix + b"/bin/" + exe + b"\n", prefix)
    assert out == b"#!/usr/bin/env " + exe + b"\n"


def test_prefix_with_space_triggers_rewrite_of_short_shebang() -> None:
    prefix = b"/home/my user/env"
    assert fix_shebang(b"#!" + prefix + b"/bin/python3.11\nx\n", prefix) == (
        b"#!/bin/sh\n'''exec' \"" + prefix + b'/bin/python3.11" "$0" "$@" #\'\'\'\nx\n'
    )
    assert fix_shebang(b"#!" + prefix + b"/bin/lua\nx\n", prefix) == b"#!/usr/bin/env lua\nx\n"


def test_prefix_with_space_leaves_foreign_shebang_alone() -> None:
    script = b"#!/usr/bin/env python3\nprint(1)\n"
    assert fix_shebang(script, b"/home/my user/env") == script


def test_long_shebang_outside_the_prefix_is_untouched() -> None:
    script = b"#!/" + b"o" * 200 + b"/bin/python\n"
    assert fix_shebang(script, SHORT_PREFIX) == script


def test_long_shebang_of_a_sibling_directory_is_untouched() -> None:
    # "<prefix>-old/bin/python" starts with the prefix's bytes but is not inside the prefix.
    prefix = _long_prefix()
    script = b"#!" + prefix + b"-old/bin/python3.12\nx\n"
    assert fix_shebang(script, prefix) == script


def test_data_without_shebang_is_untouched() -> None:
    prefix = b"/with space/" + b"z" * 200
    data = b"# not a shebang " + prefix + b"/bin/python\n"
    assert fix_shebang(data, prefix) == data
