"""Writing outputs so that a reader never sees a half-written one."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from chunkatlas.errors import ChunkatlasError


def temporary_sibling(path: Path) -> Path:
    """A hidden path next to ``path`` (same file system, so renaming it into place is atomic)."""
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


@contextmanager
def atomic_directory(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary directory path that is renamed to ``path`` only if the block succeeds.

    A killed or failing writer leaves at most a hidden temporary sibling, never ``path`` itself.
    """
    final = Path(path)
    if final.exists():
        raise ChunkatlasError(f"output already exists: {final} (remove it first)")
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_sibling(final)
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        yield tmp
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_json_atomic(path: str | os.PathLike, payload: dict) -> None:
    """Write ``payload`` as JSON to ``path`` via a temporary file and an atomic rename."""
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_sibling(final)
    try:
        tmp.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
