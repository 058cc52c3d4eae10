"""The batches of a batch-aware HVG selection: an obs column of the store read once by the
driver, checked, and turned into small integer codes per cell (the tasks never see strings)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np

from chunkatlas.analysis._flavors import selects_on_counts
from chunkatlas.errors import ChunkatlasError

if TYPE_CHECKING:
    from collections.abc import Sequence

    import pandas as pd

#: scanpy divides each batch's gene variances by n - 1 (its aggregate's dof): one cell is too few.
MIN_BATCH_CELLS = 2


@dataclass(frozen=True)
class Batches:
    """Each cell's batch as a code into ``names`` (in the order scanpy visits the batches)."""

    key: str
    names: tuple[str, ...]
    codes: np.ndarray = field(repr=False)  # one per cell, int32
    #: The genes in order of their names: how scanpy's merge of the batches orders tied genes.
    gene_name_order: np.ndarray | None = field(default=None, repr=False)

    @property
    def sizes(self) -> np.ndarray:
        return np.bincount(self.codes, minlength=len(self.names))

    def of_rows(self, row_start: int, row_stop: int) -> tuple[np.ndarray, np.ndarray]:
        """The batches of cells ``[row_start, row_stop)``: those present (codes, ascending) and
        each cell's index among them (what a task accumulates per batch)."""
        present, local = np.unique(self.codes[row_start:row_stop], return_inverse=True)
        return present.astype(np.int32), local.astype(np.int32)


def batches_of(values: pd.Series, key: str, flavor: str, where: object) -> Batches:
    """The batches in obs column ``key`` (``values``), in scanpy's order for ``flavor``: the
    categories' order for seurat and cell_ranger (scanpy makes strings categorical, categories
    sorted), sorted for seurat_v3 (``np.unique``).  Categories without cells are left out.
    Refused in one line: missing values, or a batch of fewer than MIN_BATCH_CELLS cells."""
    import pandas as pd

    if isinstance(values.dtype, pd.CategoricalDtype):
        categorical = values.cat.remove_unused_categories()
        if selects_on_counts(flavor):
            categorical = categorical.cat.reorder_categories(sorted(categorical.cat.categories))
    else:
        categorical = pd.Series(pd.Categorical(values), index=values.index)
    codes = categorical.cat.codes.to_numpy()
    if (codes < 0).any():
        missing = np.flatnonzero(codes < 0)
        raise ChunkatlasError(
            f"batch_key {key!r} of {where} has no value for {len(missing)} cell(s) (the first: "
            f"{values.index[missing[0]]!r}); fill them in or leave those cells out"
        )
    names = tuple(str(name) for name in categorical.cat.categories)
    batches = Batches(key, names, codes.astype(np.int32))
    small = np.flatnonzero(batches.sizes < MIN_BATCH_CELLS)
    if len(small):
        name, size = names[small[0]], int(batches.sizes[small[0]])
        raise ChunkatlasError(
            f"batch {name!r} of batch_key {key!r} has {size} cell; every batch needs at least "
            f"{MIN_BATCH_CELLS} cells, as scanpy divides a batch's gene variances by its cells - 1"
        )
    return batches


def obs_column(obs_columns: Sequence[str], key: str, where: object) -> None:
    """Refuse a batch key that is not among the store's obs columns, naming those it has."""
    if key not in obs_columns:
        allowed = ", ".join(map(repr, obs_columns)) or "none"
        raise ChunkatlasError(
            f"batch_key {key!r} is not an obs column of {where}; its obs columns: {allowed}"
        )


def name_order(names: Sequence[str]) -> np.ndarray:
    """Positions of ``names`` sorted by name (stable): the order in which scanpy's groupby
    leaves the genes."""
    return np.argsort(np.asarray(names, dtype=object), kind="stable")


def read_batches(location, key: str, flavor: str) -> Batches:
    """The checked batches of obs column ``key`` of the AnnData store at ``location`` (read
    alone, not all of obs), with the order of its gene names."""
    import pandas as pd
    from anndata.io import read_elem

    from chunkatlas.store import open_anndata_group

    group = open_anndata_group(location)
    obs, var = group["obs"], group["var"]
    obs_column(list(obs.attrs.get("column-order", [])), key, location)
    index = read_elem(obs[obs.attrs["_index"]])
    values = pd.Series(read_elem(obs[key]), index=pd.Index(np.asarray(index)))
    batches = batches_of(values, key, flavor, location)
    genes = name_order(read_elem(var[var.attrs["_index"]]))
    return replace(batches, gene_name_order=genes)
