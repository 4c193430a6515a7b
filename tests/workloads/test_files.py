"""labrador_trainer.files: atomic writes (readers see the old file or the new, a failure keeps the old) and JSONL."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from labrador_trainer import files
from labrador_trainer.files import (
    append_jsonl,
    atomic_write_json,
    atomic_write_text,
    atomic_writer,
    iter_jsonl,
    read_jsonl,
    write_jsonl,
)

pytestmark = pytest.mark.workloads

ROWS: list[Any] = [
    {"id": "a", "text": "zorblax — ünïcödé ✓"},
    {"id": "b", "text": "line\u2028separator, next\x85line, tab\tand\nnewline"},  # raw in the file: not line breaks
    {"nested": {"list": [1, 2.5, None, True]}},
    ["a", "list", "row"],
    "a string row",
]


def test_atomic_write_creates_parents_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "out.txt"
    atomic_write_text(target, "héllo\n")
    assert target.read_bytes() == "héllo\n".encode()
    assert [p.name for p in target.parent.iterdir()] == ["out.txt"]


def test_the_target_is_never_seen_half_written(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    target.write_text("old")
    with atomic_writer(target) as f:
        f.write("new, ")
        f.flush()
        assert target.read_text() == "old"  # the content so far is elsewhere...
        (tmp,) = [p for p in tmp_path.iterdir() if p != target]
        assert tmp.parent == target.parent and tmp.name.startswith(".out.txt.tmp-")  # ...beside it, same filesystem
        assert tmp.read_text() == "new, "
        f.write("whole")
    assert target.read_text() == "new, whole"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_a_concurrent_reader_only_ever_sees_a_whole_file(tmp_path: Path) -> None:
    target = tmp_path / "big.txt"
    versions = ["a" * 300_000, "b" * 200_000]
    atomic_write_text(target, versions[0])
    seen: set[int] = set()
    bad: list[int] = []
    done = threading.Event()

    def read() -> None:
        while not done.is_set():
            text = target.read_text()
            seen.add(len(text))
            if text not in versions:
                bad.append(len(text))

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for i in range(60):
            atomic_write_text(target, versions[i % 2])
    finally:
        done.set()
        reader.join()
    assert not bad, f"partial reads of {bad[:5]} characters"
    assert seen <= {len(v) for v in versions}


def test_a_failure_while_writing_keeps_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "out.json"
    atomic_write_json(target, {"v": 1})
    with pytest.raises(RuntimeError), atomic_writer(target) as f:
        f.write('{"v": 2, "trunc')
        raise RuntimeError("killed mid-write")
    with pytest.raises(TypeError):
        atomic_write_json(target, {"v": object()})  # not serialisable

    def rows() -> Iterator[dict[str, int]]:
        yield {"v": 3}
        raise ValueError("the producer failed after one row")

    with pytest.raises(ValueError):
        write_jsonl(target, rows())
    assert json.loads(target.read_text()) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_a_failed_rename_keeps_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "out.txt"
    target.write_text("old")

    def refuse(src: Any, dst: Any) -> None:
        raise OSError("EBUSY")

    monkeypatch.setattr(files.os, "replace", refuse)
    with pytest.raises(OSError, match="EBUSY"):
        atomic_write_text(target, "new")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


@pytest.mark.parametrize("fsync", [True, False])
def test_fsync_on_request_before_the_rename(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fsync: bool) -> None:
    target = tmp_path / "out.txt"
    calls: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(files.os, "fsync", lambda fd: (calls.append("fsync"), real_fsync(fd))[-1])
    monkeypatch.setattr(files.os, "replace", lambda a, b: (calls.append("replace"), real_replace(a, b))[-1])
    atomic_write_text(target, "x", fsync=fsync)
    assert calls == (["fsync", "replace"] if fsync else ["replace"])
    calls.clear()
    append_jsonl(tmp_path / "log.jsonl", [{"i": 0}], fsync=fsync)
    assert calls == (["fsync"] if fsync else [])


def test_new_files_get_the_usual_permissions(tmp_path: Path) -> None:
    """Not mkstemp's 0600: other processes of the pod's group read what a stage writes."""
    umask = os.umask(0o022)
    os.umask(umask)
    atomic_write_text(tmp_path / "out.txt", "x")
    (tmp_path / "plain.txt").write_text("x")
    assert (tmp_path / "out.txt").stat().st_mode & 0o777 == (tmp_path / "plain.txt").stat().st_mode & 0o777
    assert (tmp_path / "out.txt").stat().st_mode & 0o777 == 0o666 & ~umask


def test_atomic_write_json_is_json_dumps(tmp_path: Path) -> None:
    obj = {"b": [1, "ü"], "a": {"x": None}}
    for kwargs in ({}, {"indent": 1}, {"ensure_ascii": False}):
        atomic_write_json(tmp_path / "o.json", obj, **kwargs)
        assert (tmp_path / "o.json").read_text(encoding="utf-8") == json.dumps(obj, **kwargs)


def test_jsonl_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    write_jsonl(path, ROWS)
    assert path.read_text(encoding="utf-8") == "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in ROWS)
    assert read_jsonl(path) == ROWS
    assert list(iter_jsonl(path)) == ROWS
    write_jsonl(path, iter(ROWS[:2]))  # any iterable, replacing the file
    assert read_jsonl(path) == ROWS[:2]


def test_append_jsonl_creates_then_appends(tmp_path: Path) -> None:
    path = tmp_path / "partial.jsonl"
    append_jsonl(path, ROWS[:2])
    append_jsonl(path, ROWS[2:])
    append_jsonl(path, [])
    assert read_jsonl(path) == ROWS


def test_blank_lines_are_skipped_and_crlf_read(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_bytes(b'{"a": 1}\r\n\n   \n{"b": 2}\n\n')
    assert read_jsonl(path) == [{"a": 1}, {"b": 2}]


def test_a_torn_last_line_is_skipped_only_on_request(tmp_path: Path) -> None:
    """A kill mid-append leaves part of a line: a resuming reader skips it, a strict one fails."""
    path = tmp_path / "partial.jsonl"
    append_jsonl(path, [{"i": 0}, {"i": 1}])
    with path.open("a", encoding="utf-8") as f:
        f.write('{"i": 2, "items": ["ha')
    assert read_jsonl(path, skip_invalid=True) == [{"i": 0}, {"i": 1}]
    with pytest.raises(json.JSONDecodeError):
        read_jsonl(path)


def test_a_missing_file_is_empty_only_on_request(tmp_path: Path) -> None:
    assert read_jsonl(tmp_path / "nope.jsonl", missing_ok=True) == []
    assert read_jsonl(tmp_path, missing_ok=True) == []  # not a file
    with pytest.raises(FileNotFoundError):
        read_jsonl(tmp_path / "nope.jsonl")


def test_undecodable_bytes_fail_or_are_replaced(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_bytes(b'{"a": "\xff"}\n{"b": 1}\n')
    with pytest.raises(UnicodeDecodeError):
        read_jsonl(path)
    assert read_jsonl(path, errors="replace") == [{"a": "\ufffd"}, {"b": 1}]


def test_iter_jsonl_is_lazy(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    write_jsonl(path, [{"first": True}])
    with path.open("a", encoding="utf-8") as f:
        f.write("not json\n")
    assert next(iter_jsonl(path)) == {"first": True}  # the bad line further on is never read
