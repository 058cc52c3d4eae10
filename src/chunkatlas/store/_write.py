"""Writing outputs so that a reader never sees a half-written one."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from chunkatlas._schema import default
from chunkatlas.errors import ChunkatlasError

#: zarr formats chunkatlas writes; 3 by default (anndata 0.13's), 2 for readers on older tools.
ZARR_FORMATS = (2, 3)
DEFAULT_ZARR_FORMAT = default("zarr_format")


def temporary_sibling(path: Path) -> Path:
    """A hidden path next to ``path`` (same file system, so renaming it into place is atomic)."""
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def remove_stale_temporaries(path: Path) -> None:
    """Delete what killed writers of ``path`` left behind (one writer per path at a time)."""
    for stale in path.parent.glob(f".{path.name}.tmp-*"):
        if stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)
        else:
            stale.unlink(missing_ok=True)


def refuse_existing(path: str | os.PathLike) -> Path:
    """``path``, which a writer is about to create: refused if it exists (checked up front by
    long jobs, so they fail before the work rather than after)."""
    final = Path(path)
    if final.exists():
        raise ChunkatlasError(f"output already exists: {final} (remove it first)")
    return final


@contextmanager
def atomic_directory(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary directory path that is renamed to ``path`` only if the block succeeds.

    A killed or failing writer leaves at most a hidden temporary sibling, never ``path`` itself.
    """
    final = refuse_existing(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(final)
    tmp = temporary_sibling(final)
    try:
        yield tmp
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


@contextmanager
def new_zarr_store(path: str | os.PathLike, zarr_format: int = DEFAULT_ZARR_FORMAT) -> Iterator:
    """Yield the root group of a new zarr store written in ``zarr_format``, moved to ``path``
    only when the block succeeds (:func:`atomic_directory`).

    anndata's automatic sharding of v3 arrays is off inside the block: chunkatlas sets every
    matrix's geometry itself, and a chunk is then one object that the manifest lists.
    """
    import anndata as ad
    import zarr

    if zarr_format not in ZARR_FORMATS:
        raise ChunkatlasError(
            f"zarr_format {zarr_format!r} is not one of {', '.join(map(str, ZARR_FORMATS))}"
        )
    with atomic_directory(path) as tmp, ad.settings.override(auto_shard_zarr_v3=False):
        yield zarr.open_group(tmp, mode="w", zarr_format=zarr_format)


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
