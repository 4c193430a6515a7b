"""Files the workloads write, so that no reader (nor a rerun after a kill) ever sees half of one, and JSONL.

- ``atomic_write_text``, ``atomic_write_json``, ``write_jsonl``: the content goes to a temporary file beside the
  target (same directory, so same filesystem), is flushed to disk when ``fsync``, then ``os.replace``-d onto the
  target: a reader sees the old file or the new one, never part of one. A failure leaves the old file as it was and
  removes the temporary one. Missing parent directories are created. All UTF-8.
- ``append_jsonl``: rows appended in place (a kill may tear the last line; ``skip_invalid`` readers drop it).
- ``iter_jsonl``, ``read_jsonl``: one JSON value per line, blank lines skipped; lines split on ``\\n`` only (not
  ``str.splitlines``: ``ensure_ascii=False`` leaves U+2028 and U+0085 raw inside strings).

Not for termination logs: the kubelet bind-mounts that file, and renaming onto a mount point fails (EBUSY), so
``train.observe.write_summary`` writes them in place.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO


@contextmanager
def atomic_writer(path: str | Path, *, fsync: bool = False) -> Iterator[TextIO]:
    """A text file to write ``path``'s new content to; it replaces ``path`` when the block ends without an error."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # unique per writer, even for processes of the same pid in two pods on a shared volume
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")
    try:
        with tmp.open("x", encoding="utf-8") as f:
            yield f
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str, *, fsync: bool = False) -> None:
    with atomic_writer(path, fsync=fsync) as f:
        f.write(text)


def atomic_write_json(
    path: str | Path, obj: Any, *, indent: int | None = None, ensure_ascii: bool = True, fsync: bool = False
) -> None:
    """``json.dumps(obj, indent=indent, ensure_ascii=ensure_ascii)``, written atomically (no trailing newline)."""
    atomic_write_text(path, json.dumps(obj, indent=indent, ensure_ascii=ensure_ascii), fsync=fsync)


def jsonl_line(row: Any) -> str:
    """One JSONL line: compact-ish JSON (``json.dumps`` defaults), non-ASCII kept as is, then ``\\n``."""
    return json.dumps(row, ensure_ascii=False) + "\n"


def write_jsonl(path: str | Path, rows: Iterable[Any], *, fsync: bool = False) -> None:
    """Write ``rows`` as JSONL, atomically: readers see all of them or the old file."""
    with atomic_writer(path, fsync=fsync) as f:
        for row in rows:
            f.write(jsonl_line(row))


def append_jsonl(path: str | Path, rows: Iterable[Any], *, fsync: bool = False) -> None:
    """Append ``rows`` to the JSONL file at ``path`` (created if missing); on disk when it returns if ``fsync``."""
    with Path(path).open("a", encoding="utf-8") as f:
        for row in rows:
            f.write(jsonl_line(row))
        if fsync:
            f.flush()
            os.fsync(f.fileno())


def iter_jsonl(
    path: str | Path, *, missing_ok: bool = False, skip_invalid: bool = False, errors: str = "strict"
) -> Iterator[Any]:
    """The JSON values of ``path``'s non-blank lines, lazily.

    ``missing_ok``: nothing when ``path`` is not a file (else ``FileNotFoundError``). ``skip_invalid``: lines that do
    not parse are skipped, a line torn by a kill mid-append among them (else ``json.JSONDecodeError``). ``errors``:
    how undecodable UTF-8 is handled (``open``'s argument: ``"replace"`` reads past it).
    """
    p = Path(path)
    if missing_ok and not p.is_file():
        return
    with p.open(encoding="utf-8", errors=errors) as f:
        for line in f:
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except ValueError:  # json.JSONDecodeError, or an integer too long to convert
                if skip_invalid:
                    continue
                raise
            yield value


def read_jsonl(
    path: str | Path, *, missing_ok: bool = False, skip_invalid: bool = False, errors: str = "strict"
) -> list[Any]:
    """``iter_jsonl`` as a list."""
    return list(iter_jsonl(path, missing_ok=missing_ok, skip_invalid=skip_invalid, errors=errors))
