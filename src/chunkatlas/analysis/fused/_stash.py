"""Where a worker keeps the HVG values of its pass-3 blocks until pass 4 projects them: in
memory up to its share of a small budget, past it in uncompressed files on its local scratch
(the Dask worker's local directory), so X is decoded twice in all and memory stays flat in
the number of cells.

One stash per worker process, keyed by (analysis token, block index).  A projection that finds
nothing (its worker restarted, or the task ran elsewhere) reads X for that block again: slower,
never wrong.
"""

from __future__ import annotations

import os
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Kept:
    """The HVG values of one block: CSR with columns numbered among the HVGs."""

    row_ptr: np.ndarray
    cols: np.ndarray
    values: np.ndarray

    @property
    def nbytes(self) -> int:
        return self.row_ptr.nbytes + self.cols.nbytes + self.values.nbytes


_kept: dict[tuple[str, int], Kept | Path] = {}
_in_memory_bytes = 0
_lock = threading.Lock()  # tasks of one worker may run in several threads


def scratch_dir() -> Path:
    """The worker's local directory (its own disk), or the system's temporary folder."""
    try:
        from distributed import get_worker

        where = Path(get_worker().local_directory)
    except (ImportError, ValueError):  # not on a Dask worker
        where = Path(tempfile.gettempdir())
    folder = where / "chunkatlas-hvg-values"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def put(token: str, index: int, kept: Kept, budget_bytes: float) -> str:
    """Keep ``kept`` for block ``index`` of the analysis ``token``: in memory if it fits
    ``budget_bytes`` (this process's share), else in a file.  Returns "memory" or "disk"."""
    global _in_memory_bytes
    with _lock:
        if _in_memory_bytes + kept.nbytes <= budget_bytes:
            _kept[(token, index)] = kept
            _in_memory_bytes += kept.nbytes
            return "memory"
    path = scratch_dir() / f"{token}-{index}-{os.getpid()}.npz"
    np.savez(path, row_ptr=kept.row_ptr, cols=kept.cols, values=kept.values)  # uncompressed
    with _lock:
        _kept[(token, index)] = path
    return "disk"


def take(token: str, index: int) -> Kept | None:
    """The kept values of block ``index`` (removed from the stash), or None."""
    global _in_memory_bytes
    with _lock:
        found = _kept.pop((token, index), None)
        if found is not None and not isinstance(found, Path):
            _in_memory_bytes -= found.nbytes
    if not isinstance(found, Path):
        return found

    try:
        with np.load(found) as arrays:
            return Kept(arrays["row_ptr"], arrays["cols"], arrays["values"])
    except OSError:  # its file is gone: the caller reads X again
        return None
    finally:
        found.unlink(missing_ok=True)


def clear(token: str) -> int:
    """Drop everything the analysis ``token`` left (after pass 4, or after a failure)."""
    global _in_memory_bytes
    with _lock:
        mine = [key for key in _kept if key[0] == token]
        dropped = [_kept.pop(key) for key in mine]
        for found in dropped:
            if not isinstance(found, Path):
                _in_memory_bytes -= found.nbytes
    for found in dropped:
        if isinstance(found, Path):
            found.unlink(missing_ok=True)
    return len(dropped)
