"""The objects of a whole store, as ``chunkatlas rechunk`` writes it (zarr v3, its default): X's
(predicted by :mod:`._traffic`), the chunks of obs and var arrays, and a ``zarr.json`` per group
and array.

obs and var arrays are chunked as the writer chunks them: an obs array by the layout's chunk
(cells, or genes of a gene-major store) but at least :data:`COLUMN_ROWS` rows, a var array by
:data:`COLUMN_ROWS`, each with the layout's chunks per shard.  Which arrays an atlas has is read
from an AnnData source (:func:`columns_of`); an atlas given by its size alone, or a SOMA
Experiment, is taken to have the demo atlas's (:data:`DEMO_COLUMNS`, Census-shaped).  The other
elements of an AnnData store (layers, obsm, obsp, varm, varp, uns, raw) are counted as the empty
groups the demo atlas's stores have.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial

from chunkatlas.ingest import TOTAL_COLUMNS
from chunkatlas.ingest.demo import STORED_OBS_COLUMNS, STORED_VAR_COLUMNS
from chunkatlas.model._traffic import Atlas, Layout

#: Rows per chunk of var arrays, and the least of obs arrays (the writer's ``COLUMN_ROWS``).
COLUMN_ROWS = 4096
#: The store's groups besides X, obs and var: each one ``zarr.json``, holding nothing.
EMPTY_GROUPS = ("layers", "obsm", "obsp", "varm", "varp", "uns", "raw")


@dataclass(frozen=True)
class Columns:
    """The 1-D arrays of an atlas's obs and var: ``obs`` arrays of one value per cell, ``var``
    arrays of one value per gene (columns, the index, categorical codes), ``small`` arrays of
    neither length (a categorical's categories: one chunk each) and the ``groups`` among them
    (a categorical column is a group of codes and categories)."""

    obs: int
    var: int
    small: int = 0
    groups: int = 0

    def describe(self) -> str:
        more = f" and {self.small} others" if self.small else ""
        return f"{self.obs} obs and {self.var} var arrays{more}"


#: obs and var of an atlas given by its size alone: the demo atlas's (Census-shaped, strings
#: stored as strings): each column, and the index of each.
DEMO_COLUMNS = Columns(obs=len(STORED_OBS_COLUMNS) + 1, var=len(STORED_VAR_COLUMNS) + 1)


def array_objects(length: int, rows: int, shard: int) -> int:
    """Stored objects of a 1-D array of ``length`` values in chunks of ``rows`` (an array of one
    chunk holds it all), ``shard`` chunks per shard (an array of fewer chunks is one shard)."""
    chunks = math.ceil(length / max(1, min(rows, length)))
    per_object = min(shard, chunks) if shard > 1 else 1
    return math.ceil(chunks / per_object)


def store_objects(
    atlas: Atlas, layout: Layout, x_objects: int, columns: Columns = DEMO_COLUMNS
) -> int:
    """The objects of the whole store of ``atlas`` in ``layout``: ``x_objects`` (X's chunks or
    shards), the objects of ``columns`` (obs and var arrays) and one ``zarr.json`` per group
    (the root, X if sparse, obs, var, :data:`EMPTY_GROUPS`, categoricals) and per array (X's
    three if sparse, else one; obs's and var's)."""
    obs = array_objects(atlas.n_obs, max(layout.chunk, COLUMN_ROWS), layout.shard)
    var = array_objects(atlas.n_vars, COLUMN_ROWS, layout.shard)
    chunks = columns.obs * obs + columns.var * var + columns.small
    x_metadata = 1 if atlas.dense else 4  # X: an array, or a group of data, indices, indptr
    arrays = columns.obs + columns.var + columns.small
    groups = 3 + len(EMPTY_GROUPS) + columns.groups  # the root, obs, var and the rest
    return x_objects + x_metadata + chunks + arrays + groups


def columns_of(source: str | None) -> Columns:
    """The obs and var arrays of an AnnData source (a local .h5ad or a .zarr store), with the
    cell totals every store gets (:data:`~chunkatlas.ingest.TOTAL_COLUMNS`); the demo atlas's
    (:data:`DEMO_COLUMNS`) for a SOMA Experiment or no source.  Reads metadata only."""
    from chunkatlas.store import matrix_shape

    where = str(source or "").rstrip("/")
    members: list[tuple[str, str, int | None]] = []  # (axis, name, length; None: a group)
    if where.endswith(".zarr"):
        import zarr

        from chunkatlas.store import open_anndata_group

        group = open_anndata_group(where)
        shape = matrix_shape(group["X"])
        for axis in ("obs", "var"):
            for name, member in group[axis].members(max_depth=None) if axis in group else ():
                array = isinstance(member, zarr.Array)
                members.append((axis, name, (member.shape or (1,))[0] if array else None))
    elif where.endswith(".h5ad"):
        import h5py

        def add(axis: str, name: str, item) -> None:
            array = isinstance(item, h5py.Dataset)
            members.append((axis, name, (item.shape or (1,))[0] if array else None))

        with h5py.File(where, "r") as handle:
            shape = matrix_shape(handle["X"])
            for axis in ("obs", "var"):
                if axis in handle:
                    handle[axis].visititems(partial(add, axis))
    else:
        return DEMO_COLUMNS
    lengths = {"obs": int(shape[0]), "var": int(shape[1])}
    long = {
        axis: sum(1 for a, _, n in members if a == axis and n == lengths[axis]) for axis in lengths
    }
    arrays = sum(1 for *_, n in members if n is not None)
    named = {name for axis, name, _ in members if axis == "obs"}
    totals = sum(1 for name in TOTAL_COLUMNS if name not in named)
    return Columns(
        obs=long["obs"] + totals,
        var=long["var"],
        small=arrays - long["obs"] - long["var"],
        groups=len(members) - arrays,
    )
