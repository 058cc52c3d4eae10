"""Fetch one tissue from a TileDB-SOMA Experiment (the CELLxGENE Census or the demo atlas)."""

from __future__ import annotations

import logging
import os
import string
from collections.abc import Mapping

import tiledbsoma
import zarr
from anndata.io import write_elem

from chunkatlas.errors import ChunkatlasError
from chunkatlas.storeio import atomic_directory

log = logging.getLogger(__name__)

DEFAULT_OBS_FILTER = 'tissue_general == "{tissue}" and is_primary_data == True'


def build_obs_filter(template: str, tissue: str) -> str:
    """Fill ``{tissue}`` into a SOMA ``value_filter`` template, quoting the name safely.

    >>> build_obs_filter(DEFAULT_OBS_FILTER, "lung")
    'tissue_general == "lung" and is_primary_data == True'
    """
    fields = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    if fields != {"tissue"}:
        raise ChunkatlasError(
            f"obs filter template must contain exactly the field {{tissue}}, got {template!r}"
        )
    if '"' in tissue or "\\" in tissue:
        raise ChunkatlasError(f"tissue name may not contain quotes or backslashes: {tissue!r}")
    return template.format(tissue=tissue)


def soma_context(tiledb_config: Mapping[str, object] | None) -> tiledbsoma.SOMATileDBContext:
    # S3 settings must live in the context the Experiment is opened with: the tiledb_config
    # inside to_anndata(dask=...) is overwritten by it.
    return tiledbsoma.SOMATileDBContext(tiledb_config=dict(tiledb_config or {}))


def fetch_tissue(
    uri: str,
    tissue: str,
    dest: str | os.PathLike,
    *,
    measurement: str = "RNA",
    layer: str = "raw",
    obs_filter: str = DEFAULT_OBS_FILTER,
    chunk_rows: int = 10_000,
    var_index: str | None = "feature_id",
    tiledb_config: Mapping[str, object] | None = None,
    zarr_format: int = 2,
) -> dict:
    """Stream the cells of one tissue from a SOMA Experiment into an AnnData zarr store.

    ``var_index`` names the var column that becomes var_names (Census: feature_id).
    X is read as a Dask array of ``chunk_rows``-cell CSR blocks and written block by block, so
    the whole matrix is never in memory.  ``dest`` appears only once it is complete.

    Returns
    -------
    dict with n_obs, n_vars and the filter used.
    """
    value_filter = build_obs_filter(obs_filter, tissue)
    if chunk_rows < 1:
        raise ChunkatlasError(f"fetch chunk_rows must be a positive integer, got {chunk_rows}")
    try:
        experiment = tiledbsoma.Experiment.open(uri, context=soma_context(tiledb_config))
    except tiledbsoma.DoesNotExistError as err:
        raise ChunkatlasError(f"SOMA experiment not found: {uri}") from err
    with experiment:
        if measurement not in experiment.ms:
            allowed = ", ".join(sorted(experiment.ms.keys()))
            raise ChunkatlasError(f"measurement {measurement!r} not in {uri}; has: {allowed}")
        layers = experiment.ms[measurement].X
        if layer not in layers:
            allowed = ", ".join(sorted(layers.keys()))
            raise ChunkatlasError(f"X layer {layer!r} not in {uri}; has: {allowed}")
        try:
            query = experiment.axis_query(
                measurement, obs_query=tiledbsoma.AxisQuery(value_filter=value_filter)
            )
            n_obs = query.n_obs
        except (tiledbsoma.SOMAError, ValueError) as err:
            raise ChunkatlasError(f"obs filter {value_filter!r} failed: {err}") from err
        if n_obs == 0:
            raise ChunkatlasError(
                f"tissue {tissue!r} matches no cells in {uri} (filter: {value_filter})"
            )
        log.info("tissue %s: %d cells x %d genes (filter: %s)", tissue, n_obs, query.n_vars,
                 value_filter)
        adata = query.to_anndata(layer, dask={"chunk_size": chunk_rows})
        adata.obs.index = adata.obs.index.astype(str)
        if var_index:
            if var_index not in adata.var:
                allowed = ", ".join(map(str, adata.var.columns))
                raise ChunkatlasError(
                    f"var has no column {var_index!r} for var_names; has: {allowed}"
                )
            adata.var.index = adata.var[var_index].astype(str).to_numpy()
        adata.var.index.name = None
        with atomic_directory(dest) as tmp:
            out = zarr.open_group(tmp, mode="w", zarr_format=zarr_format)
            write_elem(out, "/", adata)
    return {"n_obs": int(n_obs), "n_vars": int(adata.n_vars), "filter": value_filter}
