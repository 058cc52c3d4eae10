"""The size of an atlas from its metadata alone: an AnnData zarr store, an h5ad file or a
TileDB-SOMA Experiment (one tissue's share of it)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from chunkatlas.errors import ChunkatlasError
from chunkatlas.model._traffic import Atlas

SOURCE_KINDS = "an AnnData .zarr store or .h5ad file, or a TileDB-SOMA Experiment"
#: How the name of an AnnData source ends (any other source is a SOMA Experiment).
ANNDATA_SUFFIXES = (".h5ad", ".zarr")


def is_anndata_source(source: str) -> bool:
    """True for an AnnData zarr store or h5ad file, by its name."""
    return str(source).rstrip("/").endswith(ANNDATA_SUFFIXES)


def atlas_of(source: str, tissue: str | None = None, obs_filter: str | None = None) -> Atlas:
    """The size of an atlas, from metadata only: an AnnData zarr store or h5ad file (X's shape,
    and its stored values: a sparse X's ``data``, every value of a dense X, whose stores keep it
    dense), or a TileDB-SOMA Experiment (its raw X, or one tissue's share of it with ``tissue``
    and the Census ``obs_filter``).

    Raises
    ------
    ChunkatlasError
        One line naming the source and what is allowed: it is missing, it is no AnnData store
        nor SOMA Experiment, ``tissue`` is given for an AnnData source or has no cells.
    """
    from chunkatlas.store import is_remote

    where = str(source).rstrip("/")
    anndata = is_anndata_source(where)
    if anndata and tissue is not None:
        raise ChunkatlasError(
            f"--tissue {tissue!r}: {where} is an AnnData store, and --tissue selects a tissue of "
            "a SOMA Experiment; advise reads the whole AnnData store (fetch one tissue of it "
            "first with chunkatlas fetch --tissue-column COLUMN)"
        )
    if not is_remote(where) and not os.path.exists(where):
        raise ChunkatlasError(f"store not found: {where} ({SOURCE_KINDS})")
    if anndata:
        with stored_x(where) as x:
            return _matrix_atlas(x, where)
    return _soma_atlas(where, tissue, obs_filter)


@contextmanager
def stored_x(source: str) -> Iterator:
    """X of an AnnData zarr store (local or remote) or of a local h5ad file, open while the
    block runs: a group (sparse: ``data``, ``indices``, ``indptr``) or an array (dense), of
    zarr or HDF5, which both slice into numpy.

    Raises
    ------
    ChunkatlasError
        One line naming the source and what is allowed: it is missing, no AnnData store, a
        remote h5ad, an HDF5 file without AnnData or without X.
    """
    from chunkatlas.store import is_remote, open_anndata_group

    where = str(source).rstrip("/")
    if not is_anndata_source(where):
        raise ChunkatlasError(f"{where} is not an AnnData store: X is read from a .zarr or .h5ad")
    if not is_remote(where) and not os.path.exists(where):
        raise ChunkatlasError(f"store not found: {where} ({SOURCE_KINDS})")
    if where.endswith(".zarr"):
        yield open_anndata_group(where)["X"]
        return
    with _h5ad_file(where) as handle:
        yield handle["X"]


@contextmanager
def _h5ad_file(where: str) -> Iterator:
    import h5py

    from chunkatlas.store import is_remote

    if is_remote(where):
        raise ChunkatlasError(
            f"{where}: advise reads a local .h5ad; fetch it first "
            f"(chunkatlas fetch {where} all {Path(where).stem}.zarr) or give its size with --cells"
        )
    try:
        handle = h5py.File(where, "r")
    except OSError as err:
        raise ChunkatlasError(f"{where} is not an h5ad file (HDF5: {err})") from None
    with handle:
        if "X" not in handle:
            if handle.attrs.get("encoding-type") != "anndata":
                raise ChunkatlasError(f"{where} is an HDF5 file but no AnnData (h5ad)")
            raise ChunkatlasError(f"{where} has no X (advise sizes an atlas by its X)")
        yield handle


def _matrix_atlas(x, where: str) -> Atlas:
    """The atlas of a stored X (zarr or HDF5), sparse (a group) or dense (an array)."""
    from chunkatlas.store import is_sparse, matrix_shape

    try:
        n_obs, n_vars = (int(n) for n in matrix_shape(x))
    except (KeyError, TypeError, ValueError):
        raise ChunkatlasError(f"X of {where} is not a 2-D matrix AnnData reads") from None
    if n_obs == 0 or n_vars == 0:
        raise ChunkatlasError(
            f"X of {where} is empty ({n_obs} cells x {n_vars} genes); give its size with --cells"
        )
    if is_sparse(x):
        return Atlas(n_obs, n_vars, int(x["data"].shape[0]))
    return Atlas(n_obs, n_vars, n_obs * n_vars, dense=True)  # a dense store holds every value


def _soma_atlas(uri: str, tissue: str | None, obs_filter: str | None) -> Atlas:
    import tiledbsoma

    from chunkatlas.ingest import DEFAULT_OBS_FILTER, build_obs_filter

    try:
        experiment = tiledbsoma.Experiment.open(uri)
    except Exception as err:  # tiledbsoma raises several types for "not an experiment"
        raise ChunkatlasError(
            f"{uri} is not an AnnData store (.zarr, .h5ad) nor a SOMA Experiment "
            f"({type(err).__name__}); advise reads {SOURCE_KINDS}"
        ) from None
    with experiment:
        if "RNA" not in experiment.ms or "raw" not in experiment.ms["RNA"].X:
            raise ChunkatlasError(f"SOMA Experiment {uri} has no ms['RNA'].X['raw'] to size")
        measurement = experiment.ms["RNA"]
        x = measurement.X["raw"]
        n_total, n_vars = x.shape[0], measurement.var.count
        n_obs = n_total
        if tissue is not None:
            template = obs_filter or DEFAULT_OBS_FILTER
            query = build_obs_filter(template, tissue)
            table = experiment.obs.read(value_filter=query, column_names=["soma_joinid"])
            n_obs = len(table.concat())
            if n_obs == 0:
                raise ChunkatlasError(
                    f"--tissue {tissue!r} has no cells in {uri} ({query})"
                    + _tissues_of(experiment, template)
                )
        nnz = round(x.nnz * n_obs / max(n_total, 1))
    if n_obs == 0:
        raise ChunkatlasError(f"SOMA Experiment {uri} has no cells; give a size with --cells")
    return Atlas(int(n_obs), int(n_vars), int(nnz))


def _tissues_of(experiment, template: str) -> str:
    """The tissues an obs filter on ``tissue_general`` allows (the Census and the demo have it)."""
    column = "tissue_general"
    if f"{column} ==" not in template or column not in experiment.obs.schema.names:
        return ""
    values = experiment.obs.read(column_names=[column]).concat()[column].to_pylist()
    tissues = sorted({str(v) for v in values if v is not None})
    more = f" and {len(tissues) - 30} more" if len(tissues) > 30 else ""
    return f"; tissues: {', '.join(tissues[:30])}{more}"
