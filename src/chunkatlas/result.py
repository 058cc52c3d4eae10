"""An analysis result joined with the store it was computed from: one AnnData for scanpy."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from chunkatlas.errors import ChunkatlasError

if TYPE_CHECKING:  # `import chunkatlas` stays free of anndata (Dask workers import it)
    import anndata as ad
    import pandas as pd

#: The workflow writes results/RUN/TISSUE/chunks-C/hvg_pca.zarr beside the store it analysed.
STORE_BESIDE_RESULT = "store.zarr"


def open_result(
    result: str | os.PathLike,
    store: str | os.PathLike | None = None,
    *,
    var_names: str | None = None,
    task_cells: int | None = None,
) -> ad.AnnData:
    """The analysis result ``result`` with X from the analysed store, ready for scanpy.

    ``hvg_pca.zarr`` holds no X (only obs, var with the highly-variable columns, obsm['X_pca'],
    varm['PCs'] and uns), so scanpy cannot colour cells by a gene from it alone.  This returns
    the store's AnnData with X and layers read lazily, as Dask arrays of ``task_cells`` cells per
    block (:func:`chunkatlas.store._lazy.read_dask_backed`; None: as the store is cut, one
    stored object of X per block, :func:`chunkatlas.store.cells_per_task_of`), and the
    result's var columns
    (highly_variable, means, dispersions, ...), obsm['X_pca'], varm['PCs'] and uns ('hvg',
    'pca', 'chunkatlas') added.  X holds what the store holds: the raw counts, in the workflow.

    ``store`` is the store that was analysed; None: ``store.zarr`` beside ``result``, where the
    workflow writes it (``results/RUN/TISSUE/chunks-C/store.zarr`` next to
    ``results/RUN/TISSUE/chunks-C/hvg_pca.zarr``).  Its obs and var names must be the result's.

    ``var_names`` names a var column to use as var_names, made unique (``"GENE-1"`` for a
    second ``"GENE"``): ``"feature_name"`` gives the gene symbols of Census and demo stores,
    whose var_names are Ensembl ids (``feature_id``, which stays a column).
    """
    import anndata as ad
    import pandas as pd

    from chunkatlas.store import cells_per_task_of, open_anndata_group, read_dask_backed, read_store

    result = Path(result)
    if not result.exists():
        raise ChunkatlasError(f"result not found: {result}")
    computed = read_store(result)  # small: no X
    if "X_pca" not in computed.obsm:
        raise ChunkatlasError(f"not an analysis result (no obsm['X_pca']): {result}")
    if store is None:
        store = result.parent / STORE_BESIDE_RESULT
        if not store.exists():
            raise ChunkatlasError(
                f"no store beside the result: {store} not found; "
                "give the analysed store (store=...)"
            )
    task_cells, _ = cells_per_task_of(open_anndata_group(store)["X"], task_cells)
    adata = read_dask_backed(store, task_cells)
    for axis in ("obs", "var"):
        ours, theirs = getattr(adata, axis), getattr(computed, axis)
        problem = names_mismatch(ours.index, theirs.index)
        if problem:
            raise ChunkatlasError(
                f"store {store} is not the one analysed into {result}: {axis} names {problem}"
            )
        added = [column for column in theirs.columns if column not in ours.columns]
        setattr(adata, axis, ours.join(theirs[added]))
    adata.obsm["X_pca"] = computed.obsm["X_pca"]
    adata.varm["PCs"] = computed.varm["PCs"]
    adata.uns.update(computed.uns)
    if var_names is not None:
        if var_names not in adata.var:
            allowed = ", ".join(map(str, adata.var.columns))
            raise ChunkatlasError(f"var has no column {var_names!r} for var_names; has: {allowed}")
        symbols = adata.var[var_names].astype(str).to_numpy()
        adata.var_names = ad.utils.make_index_unique(pd.Index(symbols))
    return adata


def names_mismatch(ours: pd.Index, theirs: pd.Index) -> str:
    """How two name indexes differ, in a few words; empty if they are equal."""
    if len(ours) != len(theirs):
        return f"differ in number ({len(ours)} in the store, {len(theirs)} in the result)"
    different = (ours != theirs).nonzero()[0]
    if len(different) == 0:
        return ""
    first = different[0]
    return f"differ (first: {ours[first]!r} in the store, {theirs[first]!r} in the result)"
