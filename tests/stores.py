"""Helpers for tests that reach into stores on disk."""

from __future__ import annotations

from pathlib import Path

import zarr


def chunk_key(store: Path, array: str, *index: int) -> str:
    """The key of a chunk within its array's folder: '1' or '0.3' in zarr v2, 'c/1' in v3."""
    return zarr.open_array(store / array, mode="r").metadata.encode_chunk_key(index)
