"""Cells per Dask task, ``task_cells``: how many cells of X one task of an analysis reads (the
store's chunks are its stored chunks, a word kept for them), and its check."""

from __future__ import annotations

from chunkatlas.errors import ChunkatlasError


def check_task_cells(task_cells: int) -> None:
    """Refuse a ``task_cells`` (cells per task) that is not a positive integer."""
    if task_cells < 1:
        raise ChunkatlasError(
            f"task_cells (cells per task) must be a positive integer, got {task_cells}"
        )
