"""Analysing a store: HVGs and PCA on Dask (:func:`analyze`), the cells each Dask task reads
(:func:`cells_per_task`: the one rule, the store's geometry), and the PCA figure (:func:`plot`)."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from chunkatlas.errors import ChunkatlasError

if TYPE_CHECKING:
    import anndata as ad

    from chunkatlas.analysis import AnalysisParams, ClusterSettings
    from chunkatlas.store import RemoteSettings, StoreLocation
    from chunkatlas.study import Network

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Served:
    """Read the store through a loopback server instead of from its path: ``backend`` http
    (``server`` aiohttp or nginx) or s3 (moto), behind ``network``."""

    backend: str
    server: str
    network: Network


def cells_per_task(
    store: str | os.PathLike | StoreLocation,
    given: int | None = None,
    *,
    remote: RemoteSettings | None = None,
    warn: Callable[[str], object] | None = None,
) -> int:
    """Cells per Dask task of ``store``'s X: one stored object of X (a shard of a sharded
    store, a chunk of an unsharded one; whole inner chunks of an object too large for a task),
    read from the store's own geometry.  ``given`` cells per task are taken as they are, with a
    warning when they split stored objects (a pass then reads more of them), given to ``warn``
    (None: logged)."""
    from chunkatlas.store import StoreLocation, cells_per_task_of, open_anndata_group

    if not isinstance(store, StoreLocation):
        store = StoreLocation.of(store, remote)
    cells, warning = cells_per_task_of(open_anndata_group(store)["X"], given)
    if warning:
        (warn or log.warning)(warning)
    return cells


def analyze(
    store: str | os.PathLike,
    out: str | os.PathLike,
    *,
    params: AnalysisParams,
    cluster: ClusterSettings,
    zarr_format: int,
    remote: RemoteSettings | None = None,
    task_cells: int | None = None,
    manifest: str | os.PathLike | None = None,
    figure: str | os.PathLike | None = None,
    label_key: str | None = None,
    provenance: Mapping | None = None,
    served: Served | None = None,
    warn: Callable[[str], object] | None = None,
) -> ad.AnnData:
    """normalize_total, log1p, HVGs and PCA of the AnnData store ``store`` (a path or an
    http(s)/s3 URL read with ``remote``) on ``cluster``, written to ``out``; with ``figure``,
    the PCA figure coloured by ``label_key`` too.

    Every check comes before the cluster starts: ``out`` (and ``figure``) must not exist; a
    local store is checked against its manifest (``manifest``, or the one beside it if there
    is one); the store must be an AnnData zarr store (an h5ad is refused, saying how to convert
    it) whose X suits ``params`` (``n_top_genes`` up to its genes, ``n_comps`` below its cells
    and HVGs) and whose obs has ``label_key``.  Cells per task: ``task_cells``, else
    :func:`cells_per_task` (its warning given to ``warn``).  With ``served`` the local store is
    read through a loopback server.
    """
    from chunkatlas.analysis import analyze_store
    from chunkatlas.store import (
        StoreLocation,
        check_obs_column,
        manifest_location,
        matrix_shape,
        open_anndata_group,
        refuse_existing,
        verify_store,
    )

    location = StoreLocation.of(store, remote)
    if not location.is_remote:
        manifest = manifest or manifest_location(store)
        if os.path.exists(manifest):
            verify_store(store, manifest)
    refuse_existing(out)
    if figure is not None:
        refuse_existing(figure)
    location = location.probed()  # a remote store: opened once, with its manifest or without
    if figure is not None:  # coloured by label_key, which obs must have
        check_obs_column(location, label_key, "analysis.label_key")
    params.check(*matrix_shape(open_anndata_group(location)["X"]))
    cells = cells_per_task(location, task_cells, warn=warn)
    record = dict(provenance) if provenance is not None else None

    def run(where, reader: RemoteSettings | None) -> ad.AnnData:
        return analyze_store(
            where,
            out,
            task_cells=cells,
            params=params,
            cluster=cluster,
            provenance=record,
            zarr_format=zarr_format,
            remote=reader,
        )

    if served is None:
        result = run(store, remote)
    else:
        from chunkatlas.store import RemoteSettings
        from chunkatlas.study import served_store

        with served_store(served.backend, store, served.server, served.network) as (url, opts):
            reader = remote or RemoteSettings()
            result = run(url, replace(reader, storage_options={**reader.storage_options, **opts}))
    if figure is not None:
        plot(result, figure, label_key=label_key)
    return result


def plot(
    result: ad.AnnData | str | os.PathLike,
    out: str | os.PathLike,
    *,
    label_key: str,
    title: str = "",
) -> None:
    """PC1 against PC2 of an analysis ``result`` (an AnnData, or the store it was written
    to), the ten commonest values of obs ``label_key`` in colour, as the PNG ``out``."""
    from chunkatlas.report import plot_pca

    where = "the result"
    if isinstance(result, str | os.PathLike):
        from chunkatlas.store import read_store

        where, result = str(result), read_store(result)
    if label_key not in result.obs.columns:
        raise ChunkatlasError(
            f"analysis.label_key {label_key!r} is not an obs column of {where}; it has: "
            f"{', '.join(map(str, result.obs.columns))}"
        )
    plot_pca(result, out, label_key=label_key, title=title)
