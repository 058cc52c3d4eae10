"""Keeping a run's completion records true to its stores on disk, which Snakemake cannot see:
a rule declares a store's record, never the store (see :mod:`._stores`).

- A store deleted by hand while its record stays would look finished: before Snakemake plans,
  :func:`forget_lost_stores` removes such records, so the job that writes the store runs again
  (and every job after it, as their inputs are new).
- ``snakemake --delete-all-output`` removes the declared records only: :func:`delete_stores`
  removes the stores beside them too, as Snakemake users expect of that command.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from chunkatlas.workflow._job import remove_path
from chunkatlas.workflow._stores import RECORD_SUFFIX, STORE_SUFFIXES

#: A store's manifest beside it (``NAME.zarr`` -> ``NAME.manifest.json``).
MANIFEST_SUFFIX = ".manifest.json"


def stores_beside(record: Path) -> list[Path]:
    """The stores a completion record may stand for (one name, each store suffix)."""
    stem = record.name.removesuffix(RECORD_SUFFIX)
    return [record.with_name(stem + suffix) for suffix in STORE_SUFFIXES]


def records_under(results: str | os.PathLike) -> Iterable[Path]:
    folder = Path(results)
    return sorted(folder.rglob(f"*{RECORD_SUFFIX}")) if folder.is_dir() else []


def forget_lost_stores(results: str | os.PathLike) -> list[str]:
    """Remove each completion record under ``results`` whose store is gone, and the store's
    manifest; return the stores that were missing (their jobs run again)."""
    lost = []
    for record in records_under(results):
        if not any(store.exists() for store in stores_beside(record)):
            record.unlink(missing_ok=True)
            # its manifest describes a store that is gone: the store is consolidated anew
            record.with_name(record.name.removesuffix(RECORD_SUFFIX) + MANIFEST_SUFFIX).unlink(
                missing_ok=True
            )
            lost.append(str(record.with_name(record.name.removesuffix(RECORD_SUFFIX))))
    return lost


def delete_stores(results: str | os.PathLike, dry_run: bool = False) -> list[str]:
    """Remove every store under ``results`` that has a completion record (and the record):
    what ``snakemake --delete-all-output`` leaves of a run otherwise.  ``dry_run``: only name
    them."""
    deleted = []
    for record in records_under(results):
        for store in stores_beside(record):
            if store.exists():
                deleted.append(str(store))
                if not dry_run:
                    remove_path(store)
    return deleted
