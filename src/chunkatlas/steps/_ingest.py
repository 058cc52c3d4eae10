"""Getting data in: the demo atlas (:func:`demo`) and one tissue of a source (:func:`fetch`)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from chunkatlas.steps._checks import check_source

if TYPE_CHECKING:
    from chunkatlas.ingest import SourceSettings
    from chunkatlas.ingest.demo import DemoSpec
    from chunkatlas.store import RemoteSettings


def demo(spec: DemoSpec, out: str | os.PathLike) -> dict:
    """Write the demo atlas of ``spec`` (a TileDB-SOMA Experiment) at ``out``, which must not
    exist; returns its size and cells per tissue."""
    from chunkatlas.ingest.demo import write_demo_atlas

    return write_demo_atlas(str(out), spec)


def fetch(
    source: SourceSettings,
    tissue: str,
    out: str | os.PathLike,
    *,
    remote: RemoteSettings,
    zarr_format: int,
) -> dict:
    """Stream ``tissue`` of ``source`` into the AnnData zarr store ``out`` (remote reads with
    ``remote``'s retries and timeout); a local source that does not exist is refused first.
    Returns the store's cells and genes (``n_obs``, ``n_vars``)."""
    from chunkatlas.ingest import fetch as fetch_source

    check_source(source, name="source")
    return fetch_source(source, tissue, out, remote=remote, zarr_format=zarr_format)
