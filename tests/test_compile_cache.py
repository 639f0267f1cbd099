"""The tracr compile cache: damaged, foreign, outdated and unwritable entries, and fingerprints that do not drift.

One program is compiled by tracr once per module; the other tests copy its entry around and stand in for tracr
with a counting fake, so each case costs a file copy instead of a compile.
"""

import io
import os
import re
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

import edgewise.suite.tasks.tracr.compile as compile_module
from edgewise.errors import CacheWarning
from edgewise.suite.tasks.tracr.compile import (
    CACHE_FORMAT,
    CompiledProgram,
    compile_program,
    program_fingerprint,
)

VOCAB = {"w", "x", "y", "z"}
MAX_SEQ_LEN = 3
NAME = "cache-frac-x"


def _program():
    """Returns a fresh copy of the module's program: the running fraction of "x" tokens."""
    from tracr.compiler import lib
    from tracr.rasp import rasp

    return lib.make_frac_prevs(rasp.tokens == "x")


def _other_program():
    """Returns a program that differs from `_program` only in the token it counts."""
    from tracr.compiler import lib
    from tracr.rasp import rasp

    return lib.make_frac_prevs(rasp.tokens == "y")


@dataclass
class Entry:
    """The module's one real compile and the cache file it left."""

    compiled: CompiledProgram
    key: str
    file: Path


@pytest.fixture(scope="module")
def entry(tmp_path_factory) -> Entry:
    cache_dir = tmp_path_factory.mktemp("tracr-cache")
    program = _program()
    key = program_fingerprint(program, VOCAB, MAX_SEQ_LEN, False)
    compiled = compile_program(program, VOCAB, MAX_SEQ_LEN, NAME, cache_dir=cache_dir)
    (file,) = cache_dir.glob("*.pt")
    assert file.name == f"{NAME}-{key}.pt"
    return Entry(compiled, key, file)


@pytest.fixture
def fake_tracr(monkeypatch, entry):
    """Replaces tracr by a fake that returns the module's compile; the returned list counts its calls."""
    calls = []

    def fake_compile(program, vocab, max_seq_len, name, causal):
        calls.append(name)
        return entry.compiled, None

    monkeypatch.setattr(compile_module, "_compile", fake_compile)
    return calls


@pytest.fixture
def no_tracr(monkeypatch):
    """Makes any call to tracr's compiler fail the test."""

    def refuse(*args, **kwargs):
        raise AssertionError("tracr was called although the cache holds a good entry")

    monkeypatch.setattr(compile_module, "_compile", refuse)


def _compile(cache_dir: Path, program=None) -> CompiledProgram:
    return compile_program(program or _program(), VOCAB, MAX_SEQ_LEN, NAME, cache_dir=cache_dir)


def _record_at(path: Path) -> dict:
    return torch.load(path, weights_only=False)


def _saved_bytes(obj) -> bytes:
    """Returns what torch.save writes for `obj`."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def _same_model(a: CompiledProgram, b: CompiledProgram) -> bool:
    sa, sb = a.model.state_dict(), b.model.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa) and a.ground_truth == b.ground_truth


def _loads_cleanly(cache_dir: Path, entry: Entry, monkeypatch) -> None:
    """Asserts the entry now in `cache_dir` is served as is: no warning, no compile, the module's model."""

    def refuse(*args, **kwargs):
        raise AssertionError("the replaced entry was not served from the cache")

    monkeypatch.setattr(compile_module, "_compile", refuse)
    with warnings.catch_warnings():
        warnings.simplefilter("error", CacheWarning)
        assert _same_model(_compile(cache_dir), entry.compiled)


def test_good_entry_is_served_without_tracr(tmp_path, entry, no_tracr):
    shutil.copy(entry.file, tmp_path / entry.file.name)
    with warnings.catch_warnings():
        warnings.simplefilter("error", CacheWarning)
        served = _compile(tmp_path)
    assert _same_model(served, entry.compiled)
    assert served.encoding == entry.compiled.encoding and served.reads == entry.compiled.reads


def _truncated(entry: Entry) -> bytes:
    return entry.file.read_bytes()[: entry.file.stat().st_size // 2]


def _without_weights(entry: Entry) -> bytes:
    record = _record_at(entry.file)
    del record["state_dict"]
    return _saved_bytes(record)


def _wrong_shapes(entry: Entry) -> bytes:
    record = _record_at(entry.file)
    record["state_dict"] = {k: v[..., :1] for k, v in record["state_dict"].items()}
    return _saved_bytes(record)


@pytest.mark.parametrize(
    "damage, reason",
    [
        (_truncated, "cannot be read"),
        (lambda entry: b"", "cannot be read"),
        (lambda entry: bytes(range(256)) * 16, "cannot be read"),
        (lambda entry: _saved_bytes(["not", "a", "record"]), "holds a list"),
        (_without_weights, "lacks the fields"),
        (_wrong_shapes, "does not hold a model"),
    ],
    ids=["truncated", "empty", "garbage", "not-a-record", "missing-field", "wrong-shapes"],
)
def test_damaged_entry_is_recompiled_and_replaced(tmp_path, entry, fake_tracr, monkeypatch, damage, reason):
    path = tmp_path / entry.file.name
    path.write_bytes(damage(entry))
    with pytest.warns(CacheWarning, match=re.escape(str(path)) + ".*" + reason):
        recompiled = _compile(tmp_path)
    assert fake_tracr == [NAME] and recompiled is entry.compiled
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # replaced in place, no temporary file left
    _loads_cleanly(tmp_path, entry, monkeypatch)


def test_entry_of_another_program_renamed_to_this_key_is_recompiled(tmp_path, entry, fake_tracr, monkeypatch):
    other = _other_program()
    other_key = program_fingerprint(other, VOCAB, MAX_SEQ_LEN, False)
    assert other_key != entry.key
    path = tmp_path / f"{NAME}-{other_key}.pt"
    shutil.copy(entry.file, path)  # the frac-of-x compile, under frac-of-y's name
    with pytest.warns(CacheWarning, match=re.escape(str(path)) + f".*fingerprint '{entry.key}', not '{other_key}'"):
        compile_program(other, VOCAB, MAX_SEQ_LEN, NAME, cache_dir=tmp_path)
    assert fake_tracr == [NAME]
    assert _record_at(path)["fingerprint"] == other_key


def test_entry_of_another_task_is_recompiled(tmp_path, entry, fake_tracr):
    record = _record_at(entry.file)
    record["name"] = "some-other-task"
    path = tmp_path / entry.file.name
    torch.save(record, path)
    with pytest.warns(CacheWarning, match=re.escape(str(path)) + ".*task 'some-other-task', not '" + NAME):
        _compile(tmp_path)
    assert fake_tracr == [NAME] and _record_at(path)["name"] == NAME


@pytest.mark.parametrize("old_format", [None, CACHE_FORMAT - 1, CACHE_FORMAT + 1], ids=["unrecorded", "older", "newer"])
def test_entry_of_another_cache_format_is_recompiled(tmp_path, entry, fake_tracr, monkeypatch, old_format):
    record = _record_at(entry.file)
    if old_format is None:  # as edgewise wrote entries before it stored their format
        for field in ("format", "fingerprint"):
            del record[field]
    else:
        record["format"] = old_format
    path = tmp_path / entry.file.name
    torch.save(record, path)
    found = "2 or older" if old_format is None else old_format
    with pytest.warns(CacheWarning, match=re.escape(str(path)) + f".*cache format {found};.*format {CACHE_FORMAT}"):
        _compile(tmp_path)
    assert fake_tracr == [NAME] and _record_at(path)["format"] == CACHE_FORMAT
    _loads_cleanly(tmp_path, entry, monkeypatch)


def test_cache_dir_that_cannot_be_created_keeps_the_compile(tmp_path, entry, fake_tracr):
    blocker = tmp_path / "a-file"
    blocker.write_text("a regular file where the cache's parent folder should be")
    path = blocker / "tracr" / entry.file.name
    with pytest.warns(CacheWarning, match="could not write tracr cache entry " + re.escape(str(path))):
        compiled = _compile(path.parent)
    assert compiled is entry.compiled and fake_tracr == [NAME]


def test_read_only_cache_dir_keeps_the_compile(tmp_path, entry, fake_tracr):
    if os.geteuid() == 0:
        pytest.skip("root writes into read-only folders")
    cache_dir = tmp_path / "read-only"
    cache_dir.mkdir()
    cache_dir.chmod(0o500)
    try:
        with pytest.warns(CacheWarning, match=re.escape(str(cache_dir / entry.file.name)) + ".*PermissionError"):
            compiled = _compile(cache_dir)
    finally:
        cache_dir.chmod(0o700)
    assert compiled is entry.compiled and list(cache_dir.iterdir()) == []


def test_failed_write_keeps_the_compile_the_old_entry_and_no_temporary_file(tmp_path, entry, fake_tracr, monkeypatch):
    path = tmp_path / entry.file.name
    path.write_bytes(b"")  # damaged, so it is recompiled and rewritten

    def disk_full(record, file):
        file.write(b"half a record")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(compile_module.torch, "save", disk_full)
    with pytest.warns(CacheWarning) as caught:
        compiled = _compile(tmp_path)
    messages = [str(w.message) for w in caught]
    assert any("cannot be read" in m for m in messages)
    assert any(f"could not write tracr cache entry {path}" in m and "No space left" in m for m in messages)
    assert compiled is entry.compiled
    assert [p.name for p in tmp_path.iterdir()] == [path.name] and path.read_bytes() == b""


def test_fingerprint_does_not_depend_on_what_was_compiled_before(tmp_path, entry, monkeypatch):
    """tracr stores default annotations (an SOp's encoding) the first time it reads them, also on the rasp.tokens and
    rasp.indices that every program shares: compiling A must not move B's key, nor A's own."""
    from tracr.compiler import lib
    from tracr.rasp import rasp

    from edgewise.suite.tasks.tracr.compile import compile_with_tracr

    shutil.copy(entry.file, tmp_path / entry.file.name)
    # as in a fresh process: no default annotation of the shared primitives read yet (this module's compile read them)
    for primitive in (rasp.tokens, rasp.indices):
        monkeypatch.setattr(primitive, "annotations", {})
    b = _program()
    before = program_fingerprint(b, VOCAB, MAX_SEQ_LEN, False)
    a = lib.make_frac_prevs(rasp.Map(lambda t: t in "wy", rasp.tokens))
    a_before = program_fingerprint(a, VOCAB, MAX_SEQ_LEN, False)
    compile_with_tracr(a, VOCAB, MAX_SEQ_LEN, "cache-frac-wy")
    assert "encoding" in dict(rasp.tokens.annotations)  # the compile did store the default this test is about
    assert program_fingerprint(b, VOCAB, MAX_SEQ_LEN, False) == before == entry.key
    assert program_fingerprint(a, VOCAB, MAX_SEQ_LEN, False) == a_before

    def refuse(*args, **kwargs):
        raise AssertionError("B was recompiled: its key moved")

    monkeypatch.setattr(compile_module, "_compile", refuse)
    with warnings.catch_warnings():
        warnings.simplefilter("error", CacheWarning)
        assert _same_model(_compile(tmp_path, b), entry.compiled)
    assert [p.name for p in tmp_path.iterdir()] == [entry.file.name]
