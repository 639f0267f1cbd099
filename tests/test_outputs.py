"""The atomic writer and the output-path checks (edgewise.outputs)."""

from __future__ import annotations

import os
import stat

import pytest

from edgewise.errors import OutputPathError
from edgewise.outputs import atomic_path, check_output_paths, write_text


def test_a_write_replaces_the_file_whole_and_takes_the_umask_mode(tmp_path):
    target = tmp_path / "out.json"
    target.write_text("old")
    old_mask = os.umask(0o022)
    try:
        write_text(target, "new")
    finally:
        os.umask(old_mask)
    assert target.read_text() == "new"
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]  # no temporary file left


def test_a_failed_write_leaves_the_previous_file_and_no_temporary(tmp_path):
    target = tmp_path / "out.json"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as temporary:
            temporary.write_text("half")
            raise RuntimeError("killed mid-write")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_a_full_disk_is_one_error_naming_the_file(tmp_path, monkeypatch):
    target = tmp_path / "out.json"
    target.write_text("old")

    def full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OutputPathError, match="out.json.*disk is full.*unchanged"):
        write_text(target, "new")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_output_paths_are_checked_before_work(tmp_path):
    with pytest.raises(OutputPathError, match="--json and --circuit-out both name"):
        check_output_paths({"--json": tmp_path / "a.json", "--circuit-out": tmp_path / "." / "a.json"})
    with pytest.raises(OutputPathError, match="--json .* is a directory"):
        check_output_paths({"--json": tmp_path})
    (tmp_path / "file").write_text("")
    with pytest.raises(OutputPathError, match="--out .* is a file"):
        check_output_paths({}, {"--out": tmp_path / "file"})
    with pytest.raises(OutputPathError, match="longer than this file system allows"):
        check_output_paths({"--json": tmp_path / ("x" * 300 + ".json")})
    with pytest.raises(OutputPathError, match="cannot write --json"):
        check_output_paths({"--json": "/proc/edgewise-test/out.json"})
    check_output_paths({"--json": tmp_path / "new" / "deeper" / "a.json", "--plot": None}, {"--out": tmp_path / "b"})
    assert (tmp_path / "new" / "deeper").is_dir() and (tmp_path / "b").is_dir()
    assert not list((tmp_path / "new" / "deeper").iterdir())
