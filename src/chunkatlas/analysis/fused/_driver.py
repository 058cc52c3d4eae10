"""``analyze``: one store in, one result store out (obs and var read while the passes run, the
projection streamed into the result)."""

from __future__ import annotations

import logging
import os
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING

import numpy as np
import zarr

from chunkatlas.analysis.fused._passes import KEEP_MB, FusedResult, run_passes
from chunkatlas.analysis.fused._plan import Layout, open_layout, plan_blocks, work_dtype
from chunkatlas.store._counting import take_reads
from chunkatlas.store._layout import open_anndata_group
from chunkatlas.store._location import StoreLocation
from chunkatlas.store._write import DEFAULT_ZARR_FORMAT, new_zarr_store

if TYPE_CHECKING:  # the workers never import pandas or scipy.sparse: they start faster
    import pandas as pd

log = logging.getLogger(__name__)


def result_anndata(
    obs: pd.DataFrame,
    var: pd.DataFrame,
    computed: FusedResult,
    flavor: str,
    dtype: np.dtype,
    uns: dict | None = None,
):
    """The AnnData written to hvg_pca.zarr, without obsm['X_pca'] (streamed in afterwards):
    scanpy's var columns, varm['PCs'] (zeros outside the HVGs), uns['hvg'] and uns['pca']."""
    import anndata as ad

    var = var.copy()
    for column in computed.var.columns:
        var[column] = computed.var[column].to_numpy()
    loadings = np.zeros((len(var), len(computed.fit.variance)), dtype=np.float64)
    loadings[computed.hvg] = computed.fit.components.T
    pca = {
        "params": {"zero_center": True, "use_highly_variable": True, "mask_var": "highly_variable"},
        "variance": computed.fit.variance.astype(dtype),
        "variance_ratio": computed.fit.variance_ratio.astype(dtype),
    }
    return ad.AnnData(
        obs=obs,
        var=var,
        varm={"PCs": loadings},
        uns={"hvg": {"flavor": flavor}, "pca": pca, **(uns or {})},
    )


def read_frames(store: str | os.PathLike | StoreLocation) -> tuple[pd.DataFrame, pd.DataFrame]:
    """obs and var of the store at ``store`` (their names unique)."""
    from anndata.io import read_elem

    from chunkatlas.store._lazy import check_unique_names

    source = open_anndata_group(store)
    obs, var = read_elem(source["obs"]), read_elem(source["var"])
    check_unique_names(obs, var, where=StoreLocation.of(store))
    return obs, var


def analyze(
    store: str | os.PathLike | StoreLocation,
    out: str | os.PathLike,
    *,
    client,
    rows: int,
    flavor: str,
    n_top_genes: int,
    n_comps: int,
    layout: Layout | None = None,
    uns: dict | None = None,
    keep_budget_mb: float = KEEP_MB,
    frames: Future | None = None,
    zarr_format: int = DEFAULT_ZARR_FORMAT,
):
    """Analyze the AnnData store ``store`` on the Dask cluster of ``client``; write ``out``.

    ``frames`` is a future of :func:`read_frames` for the store, started early by the caller;
    None: read obs and var while the passes run.
    Returns the result as an AnnData whose ``obsm['X_pca']`` is a Dask array over ``out``.
    """

    layout = layout or open_layout(store)
    blocks = plan_blocks(layout, rows)
    log.info("fused engine: %d tasks over %d stored values", len(blocks), layout.nnz)
    with ThreadPoolExecutor(1) as pool:
        # anndata's import and obs/var overlap the passes: the driver mostly waits during them
        frames = frames or pool.submit(read_frames, layout.location)
        computed, project = run_passes(
            client,
            layout,
            blocks,
            flavor=flavor,
            n_top_genes=n_top_genes,
            n_comps=n_comps,
            keep_budget_mb=keep_budget_mb,
        )
        obs, var = frames.result()
    import dask.array as da
    from anndata.io import write_elem

    result = result_anndata(obs, var, computed, flavor, work_dtype(layout.dtype), uns)
    costs = computed.costs
    result.uns.setdefault("chunkatlas", {}).update(seconds=costs.seconds, passes=costs.passes)
    with new_zarr_store(out, zarr_format) as root:
        write_elem(root, "/", result)
        array = root["obsm"].create_array(
            "X_pca",
            shape=(layout.n_obs, n_comps),
            dtype="float32",
            chunks=(max(1, min(layout.n_obs, 10_000)), n_comps),
        )
        array.attrs.update({"encoding-type": "array", "encoding-version": "0.2.0"})
        project(array)
        for name, value in {  # now with the projection's, and all that the driver read
            "seconds": costs.seconds,
            "passes": costs.passes,
            "driver_reads": take_reads()[1].asdict(),
            "workers_peak_rss_mb": costs.workers_peak_mb(),
        }.items():
            write_elem(root["uns"]["chunkatlas"], name, value)
            result.uns["chunkatlas"][name] = value
    result.obsm["X_pca"] = da.from_zarr(
        zarr.open_array(os.path.join(out, "obsm", "X_pca"), mode="r")
    )
    return result
