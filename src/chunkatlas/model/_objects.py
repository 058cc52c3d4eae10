"""The objects of a whole store, as ``chunkatlas rechunk`` writes it (zarr v3, its default): X's
(predicted by :mod:`._traffic`), one object per obs and var array, and a ``zarr.json`` per
group and array.

Every obs and var array is one object whatever the number of cells (a shard of its chunks, as
the writer stores it), so the objects beyond X's do not grow with the atlas.  Which arrays an
atlas has is read from an AnnData source (:func:`columns_of`); an atlas given by its size alone,
or a SOMA Experiment, is taken to have the demo atlas's (:data:`DEMO_COLUMNS`, Census-shaped).
The other elements of an AnnData store (layers, obsm, obsp, varm, varp, uns, raw) are counted as
the empty groups the demo atlas's stores have.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

from chunkatlas.ingest import TOTAL_COLUMNS
from chunkatlas.ingest.demo import STORED_OBS_COLUMNS, STORED_VAR_COLUMNS
from chunkatlas.model._traffic import Atlas

#: Requests of an open besides its arrays': the manifest and the consolidated metadata.
OPEN_METADATA_REQUESTS = 2
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

    @property
    def arrays(self) -> int:
        return self.obs + self.var + self.small

    def describe(self) -> str:
        more = f" and {self.small} others" if self.small else ""
        return f"{self.obs} obs and {self.var} var arrays{more}"


#: obs and var of an atlas given by its size alone: the demo atlas's (Census-shaped, strings
#: stored as strings): each column, and the index of each.
DEMO_COLUMNS = Columns(obs=len(STORED_OBS_COLUMNS) + 1, var=len(STORED_VAR_COLUMNS) + 1)


def store_objects(atlas: Atlas, x_objects: int, columns: Columns = DEMO_COLUMNS) -> int:
    """The objects of the whole store of ``atlas``: ``x_objects`` (X's chunks or shards, from
    its layout), one per array of ``columns`` (obs and var) and one ``zarr.json`` per group (the
    root, X if sparse, obs, var, :data:`EMPTY_GROUPS`, categoricals) and per array (X's three
    if sparse, else one; obs's and var's)."""
    x_metadata = 1 if atlas.dense else 4  # X: an array, or a group of data, indices, indptr
    groups = 3 + len(EMPTY_GROUPS) + columns.groups  # the root, obs, var and the rest
    return x_objects + x_metadata + 2 * columns.arrays + groups  # an object and a zarr.json


def open_requests(columns: Columns = DEMO_COLUMNS) -> int:
    """Requests of opening a store (the study's ``open``: the manifest, the consolidated
    metadata, then obs and var whole): one per array, whatever the layout of X or the number
    of cells."""
    return OPEN_METADATA_REQUESTS + columns.arrays


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
