"""``analyze``: one store in, one result store out (obs and var read while the passes run, the
projection streamed into the result)."""

from __future__ import annotations

import logging
import os
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING

import numpy as np
import zarr

from chunkatlas.analysis._task_cells import check_task_cells
from chunkatlas.analysis._uns import analysis_uns
from chunkatlas.analysis.fused._passes import KEEP_MB, FusedResult, run_passes
from chunkatlas.analysis.fused._plan import StoredX, open_stored_x, plan_blocks, work_dtype
from chunkatlas.store import DEFAULT_ZARR_FORMAT, StoreLocation, new_zarr_store, open_anndata_group

if TYPE_CHECKING:  # the workers never import pandas or scipy.sparse: they start faster
    import pandas as pd

    from chunkatlas.analysis._batches import Batches

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

    from chunkatlas.store import check_unique_names

    source = open_anndata_group(store)
    obs, var = read_elem(source["obs"]), read_elem(source["var"])
    check_unique_names(obs, var, where=StoreLocation.of(store))
    return obs, var


def run_fused(
    store: str | os.PathLike | StoreLocation,
    out: str | os.PathLike,
    *,
    client,
    task_cells: int | None = None,
    flavor: str,
    n_top_genes: int,
    n_comps: int,
    stored_x: StoredX | None = None,
    uns: dict | None = None,
    keep_budget_mb: float = KEEP_MB,
    frames: Future | None = None,
    zarr_format: int = DEFAULT_ZARR_FORMAT,
    batch_key: str | None = None,
    batches: Batches | None = None,
    normalized: bool = False,
):
    """Analyze the AnnData store ``store`` on the Dask cluster of ``client``, in tasks of about
    ``task_cells`` cells each; write ``out``.

    With ``normalized`` X already holds normalised, log1p'd values: HVGs and PCs are taken on
    X as it is (no library sizes, normalize_total or log1p); else X must hold integer counts.

    With ``batch_key`` (an obs column), HVGs are selected in each of its batches and merged, as
    scanpy's ``highly_variable_genes(batch_key=...)``; ``batches`` are its batches when the
    caller has read them already (None: read here, before any pass).

    ``frames`` is a future of :func:`read_frames` for the store, started early by the caller;
    None: read obs and var while the passes run.
    Returns the result as an AnnData whose ``obsm['X_pca']`` is a Dask array over ``out``.
    """
    check_task_cells(task_cells)
    stored_x = stored_x or open_stored_x(store)
    if batch_key is not None and batches is None:  # checked before any pass
        from chunkatlas.analysis._batches import read_batches

        batches = read_batches(stored_x.location, batch_key, flavor)
    blocks = plan_blocks(stored_x, task_cells)
    log.info("fused engine: %d tasks over %d stored values", len(blocks), stored_x.nnz)
    with ThreadPoolExecutor(1) as pool:
        # anndata's import and obs/var overlap the passes: the driver mostly waits during them
        frames = frames or pool.submit(read_frames, stored_x.location)
        computed = run_passes(
            client,
            stored_x,
            blocks,
            flavor=flavor,
            n_top_genes=n_top_genes,
            n_comps=n_comps,
            keep_budget_mb=keep_budget_mb,
            batches=batches,
            normalized=normalized,
        )
        obs, var = frames.result()
    import dask.array as da

    result = result_anndata(obs, var, computed, flavor, work_dtype(stored_x.dtype), uns)
    write_with_projection(result, out, computed, (stored_x.n_obs, n_comps), zarr_format)
    result.obsm["X_pca"] = da.from_zarr(
        zarr.open_array(os.path.join(out, "obsm", "X_pca"), mode="r")
    )
    return result


def write_with_projection(
    result,
    out: str | os.PathLike,
    computed: FusedResult,
    shape: tuple[int, int],
    zarr_format: int,
) -> None:
    """Write ``result`` to ``out`` and stream pass 4's projection, of ``shape``, into its
    obsm['X_pca']; then ``uns['chunkatlas']`` (in ``result`` too) is complete: the projection's
    cost and all that the driver read are known."""
    from anndata.io import write_elem

    with new_zarr_store(out, zarr_format) as root:
        write_elem(root, "/", result)
        computed.project(projection_array(root, shape))
        record = analysis_uns(computed.costs, result.uns.get("chunkatlas"))
        write_elem(root["uns"], "chunkatlas", record)
        result.uns["chunkatlas"] = record


def projection_array(root: zarr.Group, shape: tuple[int, int]) -> zarr.Array:
    """The result's obsm['X_pca'] of ``shape`` (n_obs x n_comps) float32, empty: pass 4 streams
    into it, in chunks of up to 10,000 rows."""
    n_obs, n_comps = shape
    array = root["obsm"].create_array(
        "X_pca",
        shape=(n_obs, n_comps),
        dtype="float32",
        chunks=(max(1, min(n_obs, 10_000)), n_comps),
    )
    array.attrs.update({"encoding-type": "array", "encoding-version": "0.2.0"})
    return array
