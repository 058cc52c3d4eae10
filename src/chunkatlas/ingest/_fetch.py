"""Fetch one tissue, once: from a TileDB-SOMA Experiment (the CELLxGENE Census, the demo atlas)
or from any AnnData store (h5ad or zarr, local, http(s) or s3; or a scanpy dataset)."""

from __future__ import annotations

import dataclasses
import logging
import os
import string
from collections.abc import Mapping
from dataclasses import asdict, dataclass

import anndata as ad
import numpy as np
import pandas as pd
import tiledbsoma

from chunkatlas._schema import default, default_field
from chunkatlas.config import SOMA_LAYER
from chunkatlas.errors import ChunkatlasError
from chunkatlas.ingest._cell_totals import write_with_totals
from chunkatlas.ingest._names import (
    refuse_layer_and_raw,
    refuse_missing,
    refuse_missing_var_index,
)
from chunkatlas.store import (
    DEFAULT_ZARR_FORMAT,
    RemoteSettings,
    is_matrix_element,
    is_remote,
    is_sparse,
    matrix_shape,
    new_zarr_store,
    open_remote_group,
    read_dask_backed,
    redact,
    storage_options_for,
)

log = logging.getLogger(__name__)

DEFAULT_OBS_FILTER = default("source.obs_filter")


# The source kinds, and the settings each passes on to its reader.
SOURCE_KINDS = {
    "soma": ("measurement", "layer", "obs_filter", "var_index", "tiledb_config"),
    "anndata": ("tissue_column", "layer", "use_raw", "dense", "scaled_layer"),
}


@dataclass(frozen=True)
class SourceSettings:
    """Where tissues are fetched from and how: the config's ``source`` section, typed.

    ``kind`` "soma" reads a TileDB-SOMA Experiment (``measurement``, ``layer``: the X layer of
    counts, None: raw; ``obs_filter``, ``var_index``, ``tiledb_config``); "anndata" an h5ad/zarr
    store or ``scanpy:NAME`` (``tissue_column``, ``layer``: a layer of counts to take as X,
    None: X itself; ``use_raw``, ``dense``, ``scaled_layer``, ``storage_options``).
    """

    uri: str
    kind: str = default_field("source.kind")
    measurement: str = default_field("source.measurement")
    layer: str | None = default_field("source.layer")
    obs_filter: str = default_field("source.obs_filter")
    var_index: str | None = default_field("source.var_index")
    tiledb_config: Mapping[str, object] = default_field("source.tiledb_config")
    tissue_column: str | None = default_field("source.tissue_column")
    use_raw: bool = default_field("source.use_raw")
    dense: bool = default_field("source.dense")
    scaled_layer: bool = default_field("source.scaled_layer")
    storage_options: Mapping[str, object] = default_field("source.storage_options")
    fetch_chunk_rows: int = default_field("source.fetch_chunk_rows")

    # May hold keys; they never go into Snakemake params (stored in .snakemake/metadata).
    SECRETS = ("tiledb_config", "storage_options")

    def output_params(self) -> dict:
        """What decides the fetched store's content, without the secrets."""
        return {k: v for k, v in asdict(self).items() if k not in self.SECRETS}


def fetch(
    source: SourceSettings,
    tissue: str,
    dest: str | os.PathLike,
    *,
    remote: RemoteSettings | None = None,
    zarr_format: int = DEFAULT_ZARR_FORMAT,
) -> dict:
    """Fetch one tissue of ``source`` into the AnnData zarr store ``dest``."""
    if source.kind not in SOURCE_KINDS:
        raise ChunkatlasError(
            f"source kind {source.kind!r} is not one of {', '.join(SOURCE_KINDS)}"
        )
    options = {key: getattr(source, key) for key in SOURCE_KINDS[source.kind]}
    if source.kind == "soma":
        options["layer"] = options["layer"] or SOMA_LAYER
        return fetch_tissue(
            source.uri,
            tissue,
            dest,
            chunk_rows=source.fetch_chunk_rows,
            zarr_format=zarr_format,
            **options,
        )
    remote = dataclasses.replace(remote or RemoteSettings(), storage_options=source.storage_options)
    return fetch_anndata(
        source.uri,
        tissue,
        dest,
        chunk_rows=source.fetch_chunk_rows,
        settings=remote,
        zarr_format=zarr_format,
        **options,
    )


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
    measurement: str = default("source.measurement"),
    layer: str = "raw",
    obs_filter: str = DEFAULT_OBS_FILTER,
    chunk_rows: int = default("source.fetch_chunk_rows"),
    var_index: str | None = default("source.var_index"),
    tiledb_config: Mapping[str, object] | None = None,
    zarr_format: int = DEFAULT_ZARR_FORMAT,
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
        where = redact(uri)
        measurements = sorted(experiment.ms.keys())
        refuse_missing("measurement", measurement, measurements, where, "source.measurement")
        layers = experiment.ms[measurement].X
        refuse_missing("X layer", layer, sorted(layers.keys()), where, "source.layer")
        try:
            query = experiment.axis_query(
                measurement, obs_query=tiledbsoma.AxisQuery(value_filter=value_filter)
            )
            n_obs = query.n_obs
        except (tiledbsoma.SOMAError, ValueError) as err:
            problem = (str(err).strip().splitlines() or [type(err).__name__])[0]  # no C++ trace
            raise ChunkatlasError(
                f"obs filter {value_filter!r} failed (source.obs_filter): {problem}"
            ) from err
        if n_obs == 0:
            raise ChunkatlasError(
                f"tissue {tissue!r} matches no cells in {uri} (filter: {value_filter})"
            )
        log.info(
            "tissue %s: %d cells x %d genes (filter: %s)", tissue, n_obs, query.n_vars, value_filter
        )
        # query.to_anndata would hand anndata integer indexes, which it converts with a warning
        obs = with_str_index(query.obs().concat().to_pandas())
        var = query.var().concat().to_pandas()
        if var_index:
            refuse_missing_var_index(var_index, var.columns)
        var = with_str_index(var, var_index)
        coords = (query.obs_joinids(), query.var_joinids())
        x = layers[layer].read(coords=coords).dask_array(chunk_size=chunk_rows)
        # One SOMA read at a time from Python (TileDB reads with threads of its own): reads
        # from several Python threads at once once aborted the process inside tiledbsoma.
        write_fetched(ad.AnnData(X=x, obs=obs, var=var), dest, zarr_format, threads=1)
    return {"n_obs": int(n_obs), "n_vars": len(var), "filter": value_filter}


def with_str_index(frame: pd.DataFrame, column: str | None = None) -> pd.DataFrame:
    """``frame`` indexed by the strings of ``column`` (which stays a column) or, without one, of
    the row positions: the names anndata would make of the query's integer index."""
    names = frame[column] if column else pd.RangeIndex(len(frame))
    frame.index = pd.Index(names.astype(str).to_numpy())
    return frame


def write_fetched(
    adata: ad.AnnData,
    dest: str | os.PathLike,
    zarr_format: int = DEFAULT_ZARR_FORMAT,
    *,
    threads: int | None = None,
) -> None:
    """Stream an AnnData (Dask-backed X and layers) into a new zarr store, atomically, with each
    cell's ``raw_sum`` and ``nnz`` in obs, counted from X as it streams
    (:mod:`chunkatlas.ingest._cell_totals`); ``threads`` Dask threads read X (None: one per
    core)."""
    with new_zarr_store(dest, zarr_format) as root:
        write_with_totals(root, adata, threads=threads)


SCANPY_PREFIX = "scanpy:"
# Datasets scanpy ships or downloads; pbmc68k_reduced ships inside scanpy (works offline).
SCANPY_DATASETS = ("pbmc68k_reduced", "pbmc3k_processed", "pbmc3k")


def open_anndata_source(uri: str, rows: int, settings: RemoteSettings | None = None):
    """An AnnData from ``uri``: "scanpy:NAME", or a local/http(s)/s3 .h5ad or .zarr store.

    X and layers of stores are Dask arrays of ``rows``-cell blocks; scanpy datasets are small
    and read whole.  Returns (adata, resources to keep open while it is used).
    """
    if uri.startswith(SCANPY_PREFIX):
        name = uri[len(SCANPY_PREFIX) :]
        if name not in SCANPY_DATASETS:
            raise ChunkatlasError(
                f"scanpy dataset {name!r} is not one of {', '.join(SCANPY_DATASETS)}"
            )
        import scanpy as sc

        return getattr(sc.datasets, name)(), []
    if uri.rstrip("/").endswith(".h5ad"):
        return open_h5ad_lazy(uri, rows, settings)
    if is_remote(uri):
        group, _ = open_remote_group(uri, settings, require_manifest=False)
        return read_dask_backed(group, rows), []
    return read_dask_backed(uri, rows), []


def open_h5ad_lazy(uri: str, rows: int, settings: RemoteSettings | None):
    import fsspec
    import h5py

    settings = settings or RemoteSettings()
    try:
        handle = fsspec.open(uri, "rb", **storage_options_for(uri, settings)).open()
    except FileNotFoundError:
        raise ChunkatlasError(f"source not found: {redact(uri)}") from None
    try:
        h5 = h5py.File(handle, "r")
    except OSError:
        handle.close()
        raise ChunkatlasError(f"not an HDF5 file: {redact(uri)}") from None
    return read_h5_rows(h5, rows), [h5, handle]


def read_h5_rows(h5, rows: int) -> ad.AnnData:
    """An AnnData from an open HDF5 file with X and layers as Dask arrays of row blocks.

    anndata's lazy HDF5 reader reopens the file by name in each task, which a remote file
    object has not; these tasks slice the open file instead (threads share it; h5py locks).
    """
    import dask
    import dask.array as da
    import scipy.sparse as sp
    from anndata.experimental import read_dispatched
    from anndata.io import sparse_dataset

    def lazy_rows(elem):
        sparse = is_sparse(elem)
        matrix = sparse_dataset(elem) if sparse else elem
        n_obs, n_vars = matrix_shape(elem)
        empty = sp.csr_matrix((0, 0), dtype=matrix.dtype) if sparse else np.empty((0, 0))
        read = dask.delayed(matrix.__getitem__)
        blocks = []
        for start in range(0, n_obs, rows):
            stop = min(start + rows, n_obs)
            blocks.append(
                da.from_delayed(
                    read(slice(start, stop)),
                    shape=(stop - start, n_vars),
                    dtype=matrix.dtype,
                    meta=empty.astype(matrix.dtype),
                )
            )
        return da.concatenate(blocks, axis=0)

    def callback(func, elem_name, elem, iospec):
        if is_matrix_element(elem_name):
            return lazy_rows(elem)
        return func(elem)

    return read_dispatched(h5, callback=callback)


def prepare_anndata(
    adata: ad.AnnData,
    tissue: str,
    *,
    tissue_column: str | None,
    use_raw: bool,
    dense: bool,
    scaled_layer: bool,
    where: str,
    layer: str | None = None,
) -> ad.AnnData:
    """Select one tissue's cells and shape X as configured (a layer or raw as X, dense, a
    scaled layer)."""
    refuse_layer_and_raw(layer, use_raw)
    if tissue_column:
        columns = adata.obs.columns
        refuse_missing("obs column", tissue_column, columns, where, "source.tissue_column")
        mask = (adata.obs[tissue_column].astype(str) == tissue).to_numpy()
        if not mask.any():
            raise ChunkatlasError(
                f"tissue {tissue!r} matches no cells in {where} "
                f"(filter: {tissue_column} == {tissue!r})"
            )
        adata = adata[mask]
    if use_raw:
        if adata.raw is None:
            raise ChunkatlasError(f"{where} has no .raw to take X from (source.use_raw)")
        adata = ad.AnnData(X=adata.raw.X, obs=adata.obs, var=adata.raw.var)
    else:
        # anndata 0.13 lists X among the layers, under the key None
        layers = {key: value for key, value in adata.layers.items() if key is not None}
        x = adata.X
        if layer is not None:  # the counts: X, and no longer a layer
            refuse_missing("layer", layer, layers, where, "source.layer")
            x = layers.pop(layer)
        adata = ad.AnnData(X=x, obs=adata.obs, var=adata.var, layers=layers)
    if dense:
        adata.X = densify(adata.X)
    if scaled_layer:
        import scanpy as sc

        adata.layers["scaled"] = sc.pp.scale(densify(adata.X), copy=True)
    return adata


def densify(x):
    if hasattr(x, "map_blocks"):
        return x.map_blocks(
            lambda b: b.toarray() if hasattr(b, "toarray") else b,
            dtype=x.dtype,
            meta=np.empty((0, 0), dtype=x.dtype),
        )
    return x.toarray() if hasattr(x, "toarray") else np.asarray(x)


def fetch_anndata(
    uri: str,
    tissue: str,
    dest: str | os.PathLike,
    *,
    tissue_column: str | None = None,
    layer: str | None = None,
    use_raw: bool = False,
    dense: bool = False,
    scaled_layer: bool = False,
    chunk_rows: int = 10_000,
    settings: RemoteSettings | None = None,
    zarr_format: int = DEFAULT_ZARR_FORMAT,
) -> dict:
    """Copy one tissue of an AnnData source into a zarr store, streamed block by block.

    Without ``tissue_column`` the whole dataset is the tissue (the tissue name is a label).
    With ``layer`` that layer is the store's X (the source's X is left out).
    """
    adata, keep_open = open_anndata_source(uri, chunk_rows, settings)
    try:
        prepared = prepare_anndata(
            adata,
            tissue,
            tissue_column=tissue_column,
            use_raw=use_raw,
            dense=dense,
            scaled_layer=scaled_layer,
            where=redact(uri),
            layer=layer,
        )
        log.info(
            "%s: %d cells x %d genes from %s", tissue, prepared.n_obs, prepared.n_vars, redact(uri)
        )
        write_fetched(prepared, dest, zarr_format)
    finally:
        for resource in reversed(keep_open):
            resource.close()
    return {"n_obs": int(prepared.n_obs), "n_vars": int(prepared.n_vars)}
